"""The periodic full refresh of the project cache from the Gitea API (the old git cacher's job).

Per organization: list the repositories; for each new or changed one (`updated_at` differs)
fetch its tags and branches and store them; remove cached projects Gitea no longer lists.
A repository that fails is skipped (and retried next run); an organization whose listing
fails is left alone entirely, so a Gitea outage never empties the cache.
"""

import asyncio
import logging
from dataclasses import dataclass, field

from gitea_bridge.gitea_api import GiteaApi, GiteaError
from shared.contracts.gitea import GiteaRepository
from shared.periodic import PeriodicJob
from shared.projects_cache import CachedState, ProjectCache, ProjectMeta

log = logging.getLogger(__name__)


@dataclass
class RefreshReport:
    listed: int = 0
    refreshed: list[str] = field(default_factory=list)
    unchanged: int = 0
    superseded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed_organizations: list[str] = field(default_factory=list)


class Refresher:
    def __init__(
        self,
        api: GiteaApi,
        cache: ProjectCache,
        organizations: list[str],
        *,
        concurrency: int = 5,
        interval_seconds: float = 600.0,
    ) -> None:
        self._api = api
        self._cache = cache
        self._organizations = organizations
        self._concurrency = concurrency
        self._job = PeriodicJob("gitea-refresh", self.run_once, interval_seconds)

    def start(self) -> None:
        self._job.start()

    async def stop(self) -> None:
        await self._job.stop()

    async def run_once(self) -> RefreshReport:
        report = RefreshReport()
        for org in self._organizations:
            await self._refresh_organization(org, report)
        log.info(
            "gitea refresh: %d listed, %d refreshed, %d unchanged, %d failed, %d removed%s",
            report.listed,
            len(report.refreshed),
            report.unchanged,
            len(report.failed),
            len(report.removed),
            f"; organizations not listed: {report.failed_organizations}"
            if report.failed_organizations
            else "",
        )
        return report

    async def _refresh_organization(self, org: str, report: RefreshReport) -> None:
        cached = await self._cache.states(
            [name for name in await self._cache.full_names() if name.startswith(f"{org}/")]
        )
        try:
            listing = await self._api.org_repositories(org)
        except GiteaError as exc:
            log.warning(
                "gitea refresh: cannot list %s, leaving its projects as they are: %s", org, exc
            )
            report.failed_organizations.append(org)
            return
        report.listed += len(listing.repositories)
        changed = [repo for repo in listing.repositories if _changed(repo, cached)]
        report.unchanged += len(listing.repositories) - len(changed)
        limit = asyncio.Semaphore(self._concurrency)
        outcomes = await asyncio.gather(
            *(self._refresh_repository(repo, limit) for repo in changed)
        )
        for repo, outcome in zip(changed, outcomes, strict=True):
            getattr(report, outcome).append(repo.full_name)
        for full_name, state in cached.items():
            if full_name in listing.names:
                continue
            if await self._cache.remove_project(full_name, expected_revision=state.revision):
                report.removed.append(full_name)

    async def _refresh_repository(self, repo: GiteaRepository, limit: asyncio.Semaphore) -> str:
        """Fetch and store one repository's refs; answers the report list it belongs to."""
        async with limit:
            try:
                since = await self._cache.revision(repo.full_name)
                tags = await self._api.tag_names(repo.full_name)
                branches = await self._api.branch_names(repo.full_name)
                applied = await self._cache.sync_project(
                    ProjectMeta(repo.full_name, repo.name, repo.clone_url),
                    updated_at=_stamp(repo) or "",
                    tags=tags,
                    branches=branches,
                    since=since,
                )
            except Exception as exc:
                log.warning("gitea refresh: skipped %s this run: %s", repo.full_name, exc)
                return "failed"
        return "refreshed" if applied else "superseded"


def _stamp(repo: GiteaRepository) -> str | None:
    return repo.updated_at.isoformat() if repo.updated_at is not None else None


def _changed(repo: GiteaRepository, cached: dict[str, CachedState]) -> bool:
    state = cached.get(repo.full_name)
    stamp = _stamp(repo)
    return state is None or stamp is None or state.updated_at != stamp
