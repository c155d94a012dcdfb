"""Filing a task's reported artifacts into the build's Pulp repositories (REFERENCE §5.4).

Each Pulp artifact href the node sent becomes RPM package or file content; the content is
added with one `modify` per repository, so a report makes one new version per repository.
The rows and `build_task.artifacts_stored` are written in one transaction afterwards, and
a report that cannot be filed still gets `artifacts_stored`, with the reason in `error`.
"""

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from artifacts.context import Context
from artifacts.naming import debug_repo_name, log_repo_name, parse_rpm_file_name, rpm_repo_name
from artifacts.pool import TASK_LOGS, WarmPool
from artifacts.pulp import LOG_REPO, PulpClient, PulpError, PulpRepo
from artifacts.pulp_api import Json, tally
from artifacts.store import (
    LOG_TYPE,
    link_repository,
    repository_href,
    repository_named,
    seen_before,
)
from shared.contracts.bounds import INT32_MAX
from shared.contracts.build_node import (
    BuildTaskArtifactsStored,
    BuildTaskFinished,
    ReportedArtifact,
)
from shared.db.models import BinaryRpm, BuildArtifact, BuildTask, SourceRpm
from shared.db.session import SessionFactory, unit_of_work
from shared.messaging.inbox import first_delivery
from shared.messaging.outbox import add_event

log = logging.getLogger(__name__)

# First key of the advisory lock that serializes the recording of one task's attempts.
TASK_LOCK_NAMESPACE = 0x41525446


class FilingError(Exception):
    """The report cannot be filed; the message is shown on the task."""


@dataclass(frozen=True)
class Destination:
    """The repository of the build that one artifact goes to, by its exact name."""

    repo_name: str
    arch: str
    debug: bool
    is_log: bool

    @property
    def is_source(self) -> bool:
        return self.arch == "src"


def destination(event: BuildTaskFinished, artifact: ReportedArtifact) -> Destination:
    if artifact.type == "build_log":
        name = log_repo_name(event.platform, event.arch, event.build_id, event.task_id)
        return Destination(name, event.arch, debug=False, is_log=True)
    nevra = parse_rpm_file_name(artifact.name)
    if nevra is not None and nevra.is_source:
        name = rpm_repo_name(event.platform, "src", event.build_id)
        return Destination(name, "src", debug=False, is_log=False)
    if nevra is not None and nevra.is_debug:
        name = debug_repo_name(event.platform, event.arch, event.build_id)
        return Destination(name, event.arch, debug=True, is_log=False)
    # noarch packages (and names that are no NEVRA at all) go to the task arch repository.
    name = rpm_repo_name(event.platform, event.arch, event.build_id)
    return Destination(name, event.arch, debug=False, is_log=False)


class Filing:
    """One report's way into Pulp; what it made so far stays readable after a failure."""

    def __init__(
        self, pulp: PulpClient, event: BuildTaskFinished, pool: WarmPool | None = None
    ) -> None:
        self._pulp = pulp
        self._pool = pool
        self.event = event
        self.targets = [destination(event, artifact) for artifact in event.artifacts]
        self.log_repo: PulpRepo | None = None
        self.content_hrefs: list[str] = []
        self.packages: dict[str, Json] = {}

    async def run(self, sessions: SessionFactory) -> None:
        """Each repository's `modify` starts as soon as its own units exist, so the Pulp
        worker adds the packages while the API still makes the log files' units."""
        repo_hrefs = await self._rpm_repo_hrefs(sessions)
        pooled = asyncio.ensure_future(self._pooled_log_repo(sessions))
        unique = {_content_key(a): a for a in reversed(self.event.artifacts)}  # first name wins
        content_of = await self._content_maker(list(unique.values()))
        # Packages first: they gate three repositories, the logs only one.
        ordered = sorted(unique.items(), key=lambda item: item[1].type != "rpm")
        made = {key: asyncio.ensure_future(content_of(a)) for key, a in ordered}
        # The log repository's modify needs only the repository, not its distribution.
        log_href = asyncio.ensure_future(self._log_repo_href(pooled))
        log_repo = asyncio.ensure_future(self._log_repo(pooled, log_href))
        by_repo: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        for target, artifact in zip(self.targets, self.event.artifacts, strict=True):
            by_repo[target.repo_name].append(_content_key(artifact))

        async def file_into(repo_name: str, keys: list[tuple[str, ...]]) -> None:
            units = await asyncio.gather(*(made[key] for key in keys))
            href = repo_hrefs.get(repo_name)
            if href is None:  # the log repository, made meanwhile
                href = _made(await log_href)
            await self._pulp.add_content(href, list(units))

        filed = [file_into(name, keys) for name, keys in by_repo.items()]
        # Every step runs to its end (never abandoned half way), then the first error counts.
        outcomes = await asyncio.gather(
            *filed, log_repo, pooled, *made.values(), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        self.log_repo = log_repo.result()
        self.content_hrefs = [made[_content_key(a)].result() for a in self.event.artifacts]
        rpms = [
            h
            for h, a in zip(self.content_hrefs, self.event.artifacts, strict=True)
            if a.type == "rpm"
        ]
        self.packages = await self._pulp.package_nevras(rpms) if rpms else {}

    def _log_repo_name(self) -> str | None:
        return next((t.repo_name for t in self.targets if t.is_log), None)

    async def _pooled_log_repo(self, sessions: SessionFactory) -> PulpRepo | None:
        """The warm pool's file repository renamed for this task, when the task has none yet
        (a later attempt's report files into the first attempt's repository)."""
        name = self._log_repo_name()
        if name is None or self._pool is None:
            return None
        async with sessions() as session:
            if await repository_named(session, name, LOG_TYPE):
                return None
        return (await self._pool.take([(TASK_LOGS, name)])).get(name)

    async def _log_repo_href(self, pooled: Awaitable[PulpRepo | None]) -> str | None:
        name, repo = self._log_repo_name(), await pooled
        if repo is not None:
            return repo.href
        return None if name is None else await self._pulp.create_repository(LOG_REPO, name)

    async def _log_repo(
        self, pooled: Awaitable[PulpRepo | None], href: Awaitable[str | None]
    ) -> PulpRepo | None:
        """The task's log repository; no publication until its first version (autopublish)."""
        if (repo := await pooled) is not None:
            return repo
        name, repo_href = self._log_repo_name(), await href
        if name is None or repo_href is None:
            return None
        base_url = await self._pulp.ensure_distribution(LOG_REPO, name, repo_href)
        return PulpRepo(name=name, href=repo_href, base_url=base_url)

    async def _content_maker(
        self, artifacts: list[ReportedArtifact]
    ) -> Callable[[ReportedArtifact], Awaitable[str]]:
        """How to get each artifact's content: packages Pulp has are found by pkgId (one
        query for all), the rest are made by Pulp's synchronous upload."""
        checksums = await self._pulp.artifact_checksums(
            {a.artifact_href: a.name for a in artifacts}
        )
        rpm_sums = [checksums[a.artifact_href] for a in artifacts if a.type == "rpm"]
        known = await self._pulp.packages_by_checksum(rpm_sums) if rpm_sums else {}

        async def content_of(artifact: ReportedArtifact) -> str:
            if artifact.type != "rpm":
                return await self._pulp.ensure_file(artifact.artifact_href, artifact.name)
            found = known.get(checksums[artifact.artifact_href])
            if found is not None:
                return found
            return await self._pulp.ensure_package(artifact.artifact_href, artifact.name)

        return content_of

    async def _rpm_repo_hrefs(self, sessions: SessionFactory) -> dict[str, str]:
        wanted = {t.repo_name: t for t in self.targets if not t.is_log}
        hrefs: dict[str, str] = {}
        async with sessions() as session:
            for name, target in wanted.items():
                href = await repository_href(
                    session, self.event.build_id, name, target.arch, debug=target.debug
                )
                if href is None:
                    raise FilingError(f"build {self.event.build_id} has no repository {name}")
                hrefs[name] = href
        return hrefs


def _nevra_columns(package: Json | None) -> dict[str, Any]:
    if package is None:
        return {}
    epoch = str(package.get("epoch") or "0")
    return {
        "rpm_name": package["name"],
        "rpm_epoch": int(epoch) if epoch.isdigit() and int(epoch) <= INT32_MAX else None,
        "rpm_version": package["version"],
        "rpm_release": package["release"],
        "rpm_arch": package["arch"],
    }


def _made(repo_href: str | None) -> str:
    if repo_href is None:
        raise FilingError("a log was reported but no log repository was planned")
    return repo_href


def _content_key(artifact: ReportedArtifact) -> tuple[str, ...]:
    """One RPM artifact is one package whatever its name; a log is a file under its name."""
    if artifact.type == "rpm":
        return ("rpm", artifact.artifact_href)
    return ("file", artifact.artifact_href, artifact.name)


async def store_task_artifacts(
    ctx: Context, message_id: str | None, event: BuildTaskFinished
) -> None:
    if not event.artifacts:  # nothing for Pulp: only the rows' transaction
        await _conclude(ctx, message_id, Filing(ctx.pulp, event, ctx.pool), None)
        return
    async with ctx.locks.hold(("task", event.task_id, event.attempt)):
        if await seen_before(ctx.sessions, ctx.consumer, message_id):
            return
        await _store(ctx, message_id, event)


async def _store(ctx: Context, message_id: str | None, event: BuildTaskFinished) -> None:
    filing = Filing(ctx.pulp, event, ctx.pool)
    error: str | None = None
    if await already_recorded(ctx.sessions, event.task_id, event.attempt):
        log.info("task %s attempt %s is filed already", event.task_id, event.attempt)
    else:
        started = time.monotonic()
        with tally() as counted:
            try:
                await filing.run(ctx.sessions)
            except (PulpError, FilingError) as exc:
                error = f"The artifacts could not be stored: {exc}"
                log.warning("task %s attempt %s: %s", event.task_id, event.attempt, error)
        if error is None:
            log.info(
                "task %s attempt %s: %d artifact(s) filed in %.2f s (%s)",
                event.task_id,
                event.attempt,
                len(event.artifacts),
                time.monotonic() - started,
                counted,
            )
    await _conclude(ctx, message_id, filing, error)


async def _conclude(
    ctx: Context, message_id: str | None, filing: Filing, error: str | None
) -> None:
    async with unit_of_work(ctx.sessions) as session:
        if not await first_delivery(session, ctx.consumer, message_id):
            return
        task_exists = await _record(session, filing, error)
    if not task_exists and filing.log_repo is not None:
        task_id = filing.event.task_id
        log.info("task %s is gone (build deleted); removing its log repository", task_id)
        await ctx.pulp.delete_repository(filing.log_repo.href)


async def already_recorded(sessions: SessionFactory, task_id: int, attempt: int) -> bool:
    async with sessions() as session:
        return await _attempt_recorded(session, task_id, attempt)


async def _attempt_recorded(session: AsyncSession, task_id: int, attempt: int) -> bool:
    found = await session.scalar(
        select(
            exists().where(BuildArtifact.build_task_id == task_id, BuildArtifact.attempt == attempt)
        )
    )
    return bool(found)


async def _record(session: AsyncSession, filing: Filing, error: str | None) -> bool:
    """Rows and the event, unless this attempt is recorded already; False: the task is gone."""
    event = filing.event
    await session.execute(select(func.pg_advisory_xact_lock(TASK_LOCK_NAMESPACE, event.task_id)))
    task_id = await session.scalar(
        select(BuildTask.id).where(BuildTask.id == event.task_id).with_for_update(key_share=True)
    )
    if task_id is None:
        return False
    if await _attempt_recorded(session, event.task_id, event.attempt):
        return True
    if filing.log_repo is not None:
        # Linked even after a failure, so deleting the build deletes this repository too.
        await link_repository(
            session, event.build_id, filing.log_repo, arch=event.arch, type_=LOG_TYPE, debug=False
        )
    if error is None:
        await _record_rows(session, filing)
    stored = BuildTaskArtifactsStored(
        task_id=event.task_id, build_id=event.build_id, attempt=event.attempt, error=error
    )
    await add_event(session, stored)
    return True


async def _record_rows(session: AsyncSession, filing: Filing) -> None:
    event = filing.event
    rows = [
        BuildArtifact(
            build_task_id=event.task_id,
            attempt=event.attempt,
            name=artifact.name,
            type=artifact.type,
            artifact_href=artifact.artifact_href,
            href=content_href,
            **_nevra_columns(filing.packages.get(content_href)),
        )
        for artifact, content_href in zip(event.artifacts, filing.content_hrefs, strict=True)
    ]
    session.add_all(rows)
    await session.flush()
    rpms = [(row, t) for row, t in zip(rows, filing.targets, strict=True) if not t.is_log]
    sources = [
        SourceRpm(build_id=event.build_id, artifact_id=row.id) for row, t in rpms if t.is_source
    ]
    session.add_all(sources)
    await session.flush()
    # A failed build often has binaries but no source RPM: they are kept, unlinked.
    source_id = sources[0].id if sources else None
    session.add_all(
        BinaryRpm(build_id=event.build_id, artifact_id=row.id, source_rpm_id=source_id)
        for row, t in rpms
        if not t.is_source
    )
