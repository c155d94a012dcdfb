"""GitHub's OAuth code exchange and the three API reads a login needs.

Every failure becomes an AlbsError a person can act on: GitHub's verdict on the
code or the account is 4xx, GitHub being slow, rate limited or broken is 502/503.
The access token is used for these reads and then forgotten.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import AlbsError, Forbidden, Unavailable

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
USER_AGENT = "albs-control-plane"
PAGE_SIZE = 100
MAX_PAGES = 10
# GitHub says these mean the server's OAuth app is misconfigured, not the user's code.
CLIENT_CONFIG_ERRORS = {"incorrect_client_credentials", "redirect_uri_mismatch"}


class BadGateway(AlbsError):
    status_code = 502


class LoginRejected(AlbsError):
    status_code = 400


@dataclass(frozen=True)
class GithubIdentity:
    github_id: int
    login: str
    email: str


class GithubPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")


class GithubAccount(GithubPayload):
    id: int
    login: str


class GithubEmail(GithubPayload):
    email: str
    primary: bool = False
    verified: bool = False


class GithubOrganization(GithubPayload):
    login: str


class GithubMembership(GithubPayload):
    state: str
    organization: GithubOrganization


P = TypeVar("P", bound=GithubPayload)


class GithubClient:
    def __init__(
        self, *, client_id: str, client_secret: str, web_url: str, api_url: str, timeout: float
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._web_url = web_url.rstrip("/")
        self._api_url = api_url.rstrip("/")
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), headers={"User-Agent": USER_AGENT}
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def identify(self, code: str, org: str) -> GithubIdentity:
        """Who owns this code; refuses people who are not active members of `org`."""
        token = await self._exchange_code(code)
        account = _parse(GithubAccount, await self._get(token, "/user"), "/user")
        emails = [
            _parse(GithubEmail, e, "/user/emails") for e in await self._pages(token, "/user/emails")
        ]
        email = primary_verified_email(emails)
        memberships = await self._pages(token, "/user/memberships/orgs", {"state": "active"})
        parsed = [_parse(GithubMembership, m, "/user/memberships/orgs") for m in memberships]
        if not is_active_member(parsed, org):
            raise Forbidden(f"You should be a part of {org} github organization to login.")
        return GithubIdentity(github_id=account.id, login=account.login, email=email)

    async def _exchange_code(self, code: str) -> str:
        what = "the login code exchange"
        response = await self._send(
            "POST",
            f"{self._web_url}/login/oauth/access_token",
            what,
            headers={"Accept": "application/json"},
            data={"client_id": self._client_id, "client_secret": self._client_secret, "code": code},
        )
        body = _json(response, what)
        if not isinstance(body, dict):
            raise BadGateway(f"GitHub sent an unexpected reply to {what}.")
        if isinstance(body.get("access_token"), str) and body["access_token"]:
            return str(body["access_token"])
        if not body.get("error"):
            raise BadGateway(f"GitHub sent an unexpected reply to {what}.")
        error = str(body["error"])
        description = str(body.get("error_description") or "no description")
        if error in CLIENT_CONFIG_ERRORS:
            log.error("github: the OAuth app settings were refused (%s)", error)
            raise Unavailable(
                "GitHub refused this server's OAuth app settings; an operator must fix them."
            )
        raise LoginRejected(f"GitHub did not accept the login code ({error}: {description}).")

    async def _get(self, token: str, path: str, params: dict[str, Any] | None = None) -> Any:
        response = await self._send(
            "GET",
            f"{self._api_url}{path}",
            path,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {token}",
                "X-GitHub-Api-Version": API_VERSION,
            },
            params=params,
        )
        return _json(response, path)

    async def _pages(
        self, token: str, path: str, params: dict[str, Any] | None = None
    ) -> list[Any]:
        items: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            batch = await self._get(
                token, path, {**(params or {}), "per_page": PAGE_SIZE, "page": page}
            )
            if not isinstance(batch, list):
                raise BadGateway(f"GitHub sent an unexpected reply to {path}.")
            items.extend(batch)
            if len(batch) < PAGE_SIZE:
                break
        return items

    async def _send(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.request(method, url, **kwargs)
        except (TimeoutError, httpx.TimeoutException):
            raise Unavailable(
                f"GitHub did not answer {what} within {self._timeout:g} s; try again."
            ) from None
        except httpx.HTTPError as exc:
            log.warning("github: %s failed: %s", what, type(exc).__name__)
            raise Unavailable("GitHub is unreachable from this server; try again later.") from None
        _check_status(response, what)
        return response


def _check_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    limited = response.headers.get("x-ratelimit-remaining") == "0"
    if status == 429 or (status == 403 and limited):
        raise Unavailable("GitHub's rate limit for this server is used up; try again later.")
    if status in (401, 403):
        raise Forbidden(
            f"GitHub refused {what} ({status}: {_message(response)}); the login must grant "
            "the read:user, user:email and read:org scopes."
        )
    raise BadGateway(f"GitHub answered {status} to {what}; try again later.")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "no message"
    return str(body.get("message", "no message")) if isinstance(body, dict) else "no message"


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise BadGateway(f"GitHub sent an unreadable reply to {what}.") from None


def _parse(model: type[P], item: Any, what: str) -> P:
    try:
        return model.model_validate(item)
    except ValidationError:
        raise BadGateway(f"GitHub sent an unexpected reply to {what}.") from None


def primary_verified_email(emails: list[GithubEmail]) -> str:
    for entry in emails:
        if entry.primary and entry.verified:
            return entry.email
    raise Forbidden(
        "Your GitHub account has no verified primary e-mail address; verify one and try again."
    )


def is_active_member(memberships: list[GithubMembership], org: str) -> bool:
    # Organization logins are case-insensitive on GitHub; pending invitations do not count.
    wanted = org.casefold()
    return any(
        m.state == "active" and m.organization.login.casefold() == wanted for m in memberships
    )
