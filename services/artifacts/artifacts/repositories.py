"""A build's Pulp repositories: made when the build is planned, removed with the build.

Pulp work happens before the database transaction, never inside one (REFERENCE §11.11):
the steps are idempotent by name, so a crash between Pulp and the commit only means the
redelivered event finds the repositories already there.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from artifacts.context import Context
from artifacts.naming import debug_repo_name, rpm_repo_name
from artifacts.pool import RPM_READ, RPM_SOURCE, PoolKind
from artifacts.pulp import RPM_REPO, PulpClient, PulpError, PulpRepo
from artifacts.pulp_api import tally
from artifacts.store import RPM_TYPE, build_exists, link_repository, seen_before
from shared.contracts.builds import BuildCreated, BuildDeleted, BuildReposFailed, BuildReposReady
from shared.contracts.messages import Event
from shared.db.session import unit_of_work
from shared.messaging.inbox import first_delivery, handle_once
from shared.messaging.outbox import add_event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedRepo:
    name: str
    arch: str
    debug: bool

    @property
    def read_by_nodes(self) -> bool:
        """A node's task lists the arch and debug repositories of its arch, never `src`
        (REFERENCE §5.2): only those need metadata before their first package."""
        return self.arch != "src"

    @property
    def pool_kind(self) -> PoolKind:
        return RPM_READ if self.read_by_nodes else RPM_SOURCE


def planned_repositories(event: BuildCreated) -> list[PlannedRepo]:
    """Per platform: an RPM repo for src and each arch, and a debug repo for each arch.

    Build-log repositories are not here: each task's is made when it first reports logs.
    """
    planned: dict[str, PlannedRepo] = {}
    for platform in event.platforms:
        arches = list(dict.fromkeys(platform.arch_list))
        for arch in ["src", *arches]:
            name = rpm_repo_name(platform.name, arch, event.build_id)
            planned[name] = PlannedRepo(name, arch, debug=False)
        for arch in arches:
            name = debug_repo_name(platform.name, arch, event.build_id)
            planned[name] = PlannedRepo(name, arch, debug=True)
    return list(planned.values())


async def prepare_build_repositories(
    ctx: Context, message_id: str | None, event: BuildCreated
) -> None:
    async with ctx.locks.hold(("build", event.build_id)):
        if await seen_before(ctx.sessions, ctx.consumer, message_id):
            return
        await _prepare(ctx, message_id, event)


async def _prepare(ctx: Context, message_id: str | None, event: BuildCreated) -> None:
    async with ctx.sessions() as session:
        exists = await build_exists(session, event.build_id)
    if not exists:  # the session above is closed: one connection per handler at a time
        log.info("build %s is gone; no repositories made for it", event.build_id)
        await handle_once(ctx.sessions, ctx.consumer, message_id, _nothing)
        return
    planned = planned_repositories(event)
    started = time.monotonic()
    with tally() as counted:
        pooled = await ctx.pool.take([(p.pool_kind, p.name) for p in planned]) if ctx.pool else {}
        outcomes = await all_settled(
            _pooled(pooled[p.name])
            if p.name in pooled
            else ctx.pulp.ensure_repository(RPM_REPO, p.name, publish=p.read_by_nodes)
            for p in planned
        )
    log.info(
        "build %s: %d repositories made in %.2f s, %d from the pool (%s)",
        event.build_id,
        len(planned),
        time.monotonic() - started,
        len(pooled),
        counted,
    )
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if failures:
        await remove_planned(ctx.pulp, [p.name for p in planned])
        reason = f"The build's Pulp repositories could not be created: {failures[0]}"
        log.warning("build %s: %s", event.build_id, reason)
        failed = BuildReposFailed(build_id=event.build_id, reason=reason)
        await handle_once(ctx.sessions, ctx.consumer, message_id, _announce, failed)
        return
    created = [outcome for outcome in outcomes if isinstance(outcome, PulpRepo)]
    async with unit_of_work(ctx.sessions) as session:
        if not await first_delivery(session, ctx.consumer, message_id):
            return
        recorded = await _record(session, event.build_id, zip(planned, created, strict=True))
    if not recorded:
        log.info("build %s was deleted while its repositories were made", event.build_id)
        await remove_planned(ctx.pulp, [p.name for p in planned])


async def _pooled(repo: PulpRepo) -> PulpRepo:
    return repo


async def _record(
    session: AsyncSession, build_id: int, repos: Iterable[tuple[PlannedRepo, PulpRepo]]
) -> bool:
    if not await build_exists(session, build_id, lock=True):
        return False
    for plan, repo in repos:
        await link_repository(
            session, build_id, repo, arch=plan.arch, type_=RPM_TYPE, debug=plan.debug
        )
    await add_event(session, BuildReposReady(build_id=build_id))
    return True


async def remove_build_repositories(
    ctx: Context, message_id: str | None, event: BuildDeleted
) -> None:
    """Delete the repositories and their distributions; a failure raises for redelivery."""
    async with ctx.locks.hold(("build", event.build_id)):
        if await seen_before(ctx.sessions, ctx.consumer, message_id):
            return
        deleting = (ctx.pulp.delete_repository(href) for href in event.repository_hrefs)
        failures = [o for o in await all_settled(deleting) if isinstance(o, BaseException)]
        if failures:
            raise PulpError(
                f"build {event.build_id}: {len(failures)} repositories not deleted: {failures[0]}"
            )
        await handle_once(ctx.sessions, ctx.consumer, message_id, _nothing)


async def remove_planned(pulp: PulpClient, names: list[str]) -> None:
    """Best effort: what cannot be removed now is logged, the caller fails all the same."""
    outcomes = await all_settled(pulp.delete_repository_named(RPM_REPO, name) for name in names)
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            log.error("could not remove Pulp repository %r: %s", name, outcome)


async def all_settled(steps: Iterable[Awaitable[object]]) -> list[object]:
    """Run every step to its end (the client bounds how many run at once); keep failures.

    Unlike a task group this never abandons a Pulp step half way, so a clean-up that
    follows cannot race a creation still in flight.
    """
    outcomes: list[object] = await asyncio.gather(*steps, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, PulpError):
            raise outcome
    return outcomes


async def _announce(session: AsyncSession, event: Event) -> None:
    await add_event(session, event)


async def _nothing(session: AsyncSession) -> None:
    """The event needs no effect beyond its inbox row."""
