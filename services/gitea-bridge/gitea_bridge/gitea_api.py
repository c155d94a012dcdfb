"""The few Gitea API calls the refresh needs, paginated to the end, with timeouts and retries."""

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from shared.contracts.gitea import GiteaRepository
from shared.retry import retrying

log = logging.getLogger(__name__)

RETRIED_STATUSES = {408, 425, 429, 500, 502, 503, 504}
# A server that ignores `page` would otherwise be paged forever.
MAX_PAGES = 10_000


class GiteaError(Exception):
    pass


@dataclass
class OrgListing:
    """The readable repositories of an organization, and every full name it listed."""

    repositories: list[GiteaRepository] = field(default_factory=list)
    names: set[str] = field(default_factory=set)


class GiteaApi:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        page_size: int = 50,
        attempts: int = 3,
        backoff_seconds: float = 1.0,
    ) -> None:
        self._client = client
        self._page_size = page_size
        self._attempts = attempts
        self._backoff = backoff_seconds

    async def org_repositories(self, org: str) -> OrgListing:
        listing = OrgListing()
        for item in await self._all_pages(f"orgs/{org}/repos"):
            name = item.get("full_name") if isinstance(item, dict) else None
            if isinstance(name, str):
                listing.names.add(name)
            try:
                listing.repositories.append(GiteaRepository.model_validate(item))
            except ValidationError as exc:
                log.warning("gitea: skipped an unreadable repository %r of %s: %s", name, org, exc)
        return listing

    async def tag_names(self, full_name: str) -> list[str]:
        return _names(await self._all_pages(f"repos/{full_name}/tags"))

    async def branch_names(self, full_name: str) -> list[str]:
        return _names(await self._all_pages(f"repos/{full_name}/branches"))

    async def _all_pages(self, path: str) -> list[Any]:
        """Every item of a list endpoint: pages until a short or empty one, or the total count."""
        items: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            response = await self._get(path, {"limit": self._page_size, "page": page})
            try:
                batch = response.json()
            except ValueError:
                raise GiteaError(f"GET {path} page {page}: the answer is not JSON") from None
            if not isinstance(batch, list):
                raise GiteaError(f"GET {path} page {page}: expected a list, got {type(batch)}")
            items.extend(batch)
            total = response.headers.get("x-total-count")
            if not batch or (total is not None and total.isdigit() and len(items) >= int(total)):
                return items
            if total is None and len(batch) < self._page_size:
                return items
        raise GiteaError(f"GET {path}: still more after {MAX_PAGES} pages")

    async def _get(self, path: str, params: dict[str, int]) -> httpx.Response:
        what = f"GET {path} page {params['page']}"
        try:
            return await retrying(
                lambda: self._get_once(path, params),
                what=f"gitea: {what}",
                retry_on=_worth_retrying,
                attempts=self._attempts,
                first_wait=self._backoff,
            )
        except httpx.TransportError as exc:
            raise GiteaError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
        except GiteaError as exc:
            raise GiteaError(f"{what} failed: {exc}") from exc

    async def _get_once(self, path: str, params: dict[str, int]) -> httpx.Response:
        response = await self._client.get(path, params=params)
        if response.status_code >= 400:
            kind = RetriableStatus if response.status_code in RETRIED_STATUSES else GiteaError
            raise kind(f"HTTP {response.status_code}")
        return response


class RetriableStatus(GiteaError):
    pass


def _worth_retrying(error: BaseException) -> bool:
    return isinstance(error, httpx.TransportError | RetriableStatus)


def _names(items: list[Any]) -> list[str]:
    return [str(item["name"]) for item in items if isinstance(item, dict) and "name" in item]


def api_client(base_url: str, *, timeout: float, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"token {token}"
    return httpx.AsyncClient(base_url=base_url.rstrip("/") + "/", timeout=timeout, headers=headers)
