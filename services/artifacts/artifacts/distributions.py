"""Distributions: their Pulp repositories, and builds' packages added to them or removed.

The artifacts service owns distributions and their links (docs/decisions/0012). Every
command reads in one short session, works in Pulp with no session open, then records in
one transaction. A Pulp step that still fails after its retries is undone (the other
repositories' changes are reversed) and answered 503: the database is changed only after
Pulp succeeded everywhere, so the two agree.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from artifacts.context import Context
from artifacts.distro_plan import (
    DistroRepo,
    Package,
    PlatformArches,
    planned_repositories,
    units_by_repository,
    without,
)
from artifacts.pulp import RPM_REPO, PulpRepo
from artifacts.repositories import all_settled, remove_planned
from artifacts.store import RPM_TYPE, build_exists, seen_before, upsert_repository
from shared.contracts.build_node import BuildTaskArtifactsStored
from shared.contracts.distributions import (
    ChangeDistribution,
    CreateDistribution,
    DistributionChanged,
    DistributionChangeReply,
    DistributionOut,
)
from shared.contracts.messages import Actor
from shared.db.models import (
    Build,
    BuildArtifact,
    BuildTask,
    BuildTaskStatus,
    Distribution,
    Platform,
    Repository,
    distribution_packages,
    distribution_platforms,
    distribution_repositories,
)
from shared.db.session import unit_of_work
from shared.errors import Conflict, Forbidden, NotFound, Unavailable
from shared.messaging.inbox import handle_once
from shared.messaging.outbox import add_event

log = logging.getLogger(__name__)

Units = dict[str, set[str]]  # repository name -> content hrefs


# Create


async def create_distribution(ctx: Context, command: CreateDistribution) -> DistributionOut:
    body = command.distribution
    if not command.actor.is_admin:
        raise Forbidden("Only an administrator may create a distribution.")
    async with ctx.locks.hold(("distribution", body.name)):
        async with ctx.sessions() as session:
            if await session.scalar(select(exists().where(Distribution.name == body.name))):
                raise _exists(body.name)
            platforms = await _platforms(session, body.platforms)
        planned = planned_repositories(
            body.name, [PlatformArches(p.name, p.arch_list) for p in platforms]
        )
        outcomes = await all_settled(
            ctx.pulp.ensure_repository(RPM_REPO, p.name, publish=True) for p in planned
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            await remove_planned(ctx.pulp, [p.name for p in planned])
            raise Unavailable(
                f"The Pulp repositories of distribution '{body.name}' could not be created "
                f"(nothing was kept): {failures[0]}"
            )
        made = [(p, o) for p, o in zip(planned, outcomes, strict=True) if isinstance(o, PulpRepo)]
        async with unit_of_work(ctx.sessions) as session:
            distribution = Distribution(name=body.name)
            session.add(distribution)
            try:
                await session.flush()
            except IntegrityError as exc:  # another replica created it meanwhile
                raise _exists(body.name) from exc
            await _link(session, distribution.id, platforms, made)
            return DistributionOut(id=distribution.id, name=distribution.name)


def _exists(name: str) -> Conflict:
    return Conflict(f"Distribution '{name}' already exists.")


async def _platforms(session: AsyncSession, names: list[str]) -> list[Platform]:
    wanted = list(dict.fromkeys(names))
    found = {
        p.name: p for p in await session.scalars(select(Platform).where(Platform.name.in_(wanted)))
    }
    missing = [name for name in wanted if name not in found]
    if missing:
        listed = ", ".join(f"'{name}'" for name in missing)
        raise NotFound(
            f"Platform {listed} is not found."
            if len(missing) == 1
            else f"Platforms {listed} are not found."
        )
    return [found[name] for name in wanted]


async def _link(
    session: AsyncSession,
    distribution_id: int,
    platforms: list[Platform],
    made: list[tuple[DistroRepo, PulpRepo]],
) -> None:
    for platform in platforms:
        await session.execute(
            insert(distribution_platforms).values(
                distribution_id=distribution_id, platform_id=platform.id
            )
        )
    for plan, repo in made:
        repository_id = await upsert_repository(
            session, repo, arch=plan.arch, type_=RPM_TYPE, debug=plan.debug
        )
        await session.execute(
            insert(distribution_repositories)
            .values(distribution_id=distribution_id, repository_id=repository_id)
            .on_conflict_do_nothing()
        )


# Add and remove


@dataclass(frozen=True)
class Target:
    """A distribution as a change needs it: its id, name and repositories' Pulp hrefs."""

    id: int
    name: str
    repo_hrefs: dict[str, str]


@dataclass(frozen=True)
class Change:
    """What one change does in Pulp and how to undo it."""

    apply: Units
    undo: Units
    add: bool


async def add_build(ctx: Context, command: ChangeDistribution) -> DistributionChangeReply:
    build_id = command.build_id
    async with ctx.locks.hold(("distribution", command.distribution)):
        async with ctx.sessions() as session:
            target = await _target(session, command.distribution)
            await _check_owner(session, command.actor, build_id, "add")
            if await _linked(session, target.id, build_id):
                raise Conflict(
                    f"Packages of build {build_id} have already been added to "
                    f"{target.name} distribution"
                )
            mine = await _units(session, target, _published() & (BuildTask.build_id == build_id))
            others = await _units_of_others(session, target, build_id)
        change = Change(apply=mine, undo=without(mine, others), add=True)
        await _run(ctx, target, build_id, change)
        if not await _record_link(ctx, target, build_id):
            await _take_back(ctx, target, build_id, change)
            raise NotFound(f"Build with build_id={build_id} is not found")
        await _catch_up(ctx, target, build_id, mine)
    return DistributionChangeReply(success=True)


async def _record_link(ctx: Context, target: Target, build_id: int) -> bool:
    """Record the build in the distribution; False when it was deleted meanwhile (the
    build's row lock orders this against a delete, which refuses linked builds)."""
    async with unit_of_work(ctx.sessions) as session:
        if not await build_exists(session, build_id, lock=True):
            return False
        await session.execute(
            insert(distribution_packages)
            .values(distribution_id=target.id, build_id=build_id)
            .on_conflict_do_nothing()
        )
        await _announce(session, target, build_id, "added")
    return True


async def _take_back(ctx: Context, target: Target, build_id: int, change: Change) -> None:
    """The build was deleted while its packages went in: take them out again."""
    _, undo = _modifiers(ctx, change.add)
    repos = [repo for repo in change.undo if repo in change.apply]
    steps = [undo(target.repo_hrefs[repo], sorted(change.undo[repo])) for repo in repos]
    failures = [o for o in await all_settled(steps) if isinstance(o, BaseException)]
    if failures:
        log.error(
            "build %s was deleted while added to %s; taking its packages out failed: %s",
            build_id,
            target.name,
            failures[0],
        )


async def _catch_up(ctx: Context, target: Target, build_id: int, applied: Units) -> None:
    """Packages stored while the add ran were announced before the link existed, so the
    event hook skipped them: add them now that the link is committed."""
    async with ctx.sessions() as session:
        now = await _units(session, target, _published() & (BuildTask.build_id == build_id))
        others = await _units_of_others(session, target, build_id)
    late = without(now, applied)
    if not late:
        return
    try:
        await _run(ctx, target, build_id, Change(apply=late, undo=without(late, others), add=True))
    except Unavailable as exc:
        raise Unavailable(
            f"Build {build_id} was added to {target.name}, but packages it stored meanwhile "
            f"could not be: {exc.detail} Remove the build and add it again."
        ) from exc


async def remove_build(ctx: Context, command: ChangeDistribution) -> DistributionChangeReply:
    build_id = command.build_id
    async with ctx.locks.hold(("distribution", command.distribution)):
        async with ctx.sessions() as session:
            target = await _target(session, command.distribution)
            await _check_owner(session, command.actor, build_id, "remove")
            if not await _linked(session, target.id, build_id):
                raise Conflict(
                    f"Packages of build {build_id} cannot be removed from {target.name} "
                    "distribution as they are not added there"
                )
            # Every attempt's packages: whatever of the build is there must go.
            mine = await _units(session, target, BuildTask.build_id == build_id)
            leaving = without(mine, await _units_of_others(session, target, build_id))
        await _run(ctx, target, build_id, Change(apply=leaving, undo=leaving, add=False))
        async with unit_of_work(ctx.sessions) as session:
            await session.execute(
                delete(distribution_packages).where(
                    distribution_packages.c.distribution_id == target.id,
                    distribution_packages.c.build_id == build_id,
                )
            )
            await _announce(session, target, build_id, "removed")
    return DistributionChangeReply(success=True)


async def add_restarted_task(
    ctx: Context, message_id: str | None, event: BuildTaskArtifactsStored
) -> None:
    """A task of a build already in distributions finished again: its new packages join."""
    if event.error is None and not await seen_before(ctx.sessions, ctx.consumer, message_id):
        async with ctx.sessions() as session:
            names = list(
                await session.scalars(
                    select(Distribution.name)
                    .join(distribution_packages)
                    .where(distribution_packages.c.build_id == event.build_id)
                    .order_by(Distribution.id)
                )
            )
        for name in names:
            await _add_task(ctx, name, event)
    await handle_once(ctx.sessions, ctx.consumer, message_id, _nothing)


async def _add_task(ctx: Context, name: str, event: BuildTaskArtifactsStored) -> None:
    async with ctx.locks.hold(("distribution", name)):
        async with ctx.sessions() as session:
            target = await _target(session, name)
            if not await _linked(session, target.id, event.build_id):
                return  # removed meanwhile
            attempt = (BuildTask.id == event.task_id) & (BuildArtifact.attempt == event.attempt)
            units = await _units(session, target, _published() & attempt)
            others = await _units_of_others(session, target, event.build_id)
        change = Change(apply=units, undo=without(units, others), add=True)
        await _run(ctx, target, event.build_id, change)  # a failure raises: redelivered


async def _nothing(session: AsyncSession) -> None:
    """The event needs no effect beyond its inbox row."""


async def _target(session: AsyncSession, name: str) -> Target:
    distribution = await session.scalar(select(Distribution).where(Distribution.name == name))
    if distribution is None:
        raise NotFound(f"Distribution '{name}' is not found")
    rows = await session.execute(
        select(Repository.name, Repository.pulp_href)
        .join(distribution_repositories)
        .where(distribution_repositories.c.distribution_id == distribution.id)
    )
    hrefs = {repo_name: href for repo_name, href in rows.all() if href is not None}
    return Target(distribution.id, distribution.name, hrefs)


async def _check_owner(session: AsyncSession, actor: Actor, build_id: int, action: str) -> None:
    owner = await session.scalar(select(Build.user_id).where(Build.id == build_id))
    if owner is None:
        raise NotFound(f"Build with build_id={build_id} is not found")
    if owner != actor.user_id and not actor.is_admin:
        raise Forbidden(
            f"Only the owner of build {build_id} or an administrator may {action} its packages."
        )


async def _linked(session: AsyncSession, distribution_id: int, build_id: int) -> bool:
    found = await session.scalar(
        select(
            exists().where(
                distribution_packages.c.distribution_id == distribution_id,
                distribution_packages.c.build_id == build_id,
            )
        )
    )
    return bool(found)


def _published() -> ColumnElement[bool]:
    """The packages a build publishes: those of the last attempt of each completed task
    (a failed task's packages never reach a distribution)."""
    return (BuildTask.status == BuildTaskStatus.COMPLETED) & (
        BuildArtifact.attempt == BuildTask.attempt
    )


async def _units(session: AsyncSession, target: Target, where: ColumnElement[bool]) -> Units:
    rows = await session.execute(
        select(Platform.name, BuildTask.arch, BuildArtifact.name, BuildArtifact.href)
        .select_from(BuildArtifact)
        .join(BuildTask, BuildTask.id == BuildArtifact.build_task_id)
        .join(Platform, Platform.id == BuildTask.platform_id)
        .where(where, BuildArtifact.type == RPM_TYPE, BuildArtifact.href.is_not(None))
    )
    packages = [Package(p, arch, name, str(href)) for p, arch, name, href in rows.all()]
    return units_by_repository(target.name, packages, target.repo_hrefs)


async def _units_of_others(session: AsyncSession, target: Target, build_id: int) -> Units:
    """What the other builds of the distribution publish there."""
    others = (
        select(distribution_packages.c.build_id)
        .where(
            distribution_packages.c.distribution_id == target.id,
            distribution_packages.c.build_id != build_id,
        )
        .scalar_subquery()
    )
    return await _units(session, target, _published() & BuildTask.build_id.in_(others))


async def _run(ctx: Context, target: Target, build_id: int, change: Change) -> None:
    """One repository modify per repository; if any fails for good, undo the others."""
    do, undo = _modifiers(ctx, change.add)
    repos = list(change.apply)
    steps = [do(target.repo_hrefs[repo], sorted(change.apply[repo])) for repo in repos]
    outcomes = await all_settled(steps)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if not failures:
        return
    what = f"{'adding' if change.add else 'removing'} build {build_id}'s packages"
    where = f"{'to' if change.add else 'from'} distribution {target.name}"
    failed = {repo for repo, o in zip(repos, outcomes, strict=True) if isinstance(o, BaseException)}
    # A failed modify is undone too (its task may have run although its poll failed), but
    # only the undoing of the modifies that succeeded must succeed.
    undoing = [r for r in change.undo if r in change.apply]
    reverts = [undo(target.repo_hrefs[r], sorted(change.undo[r])) for r in undoing]
    stuck = [
        o
        for repo, o in zip(undoing, await all_settled(reverts), strict=True)
        if isinstance(o, BaseException) and repo not in failed
    ]
    if stuck:
        log.error("%s %s: undoing failed too: %s", what, where, stuck[0])
        raise Unavailable(
            f"Pulp failed while {what} {where} ({failures[0]}) and undoing it failed too "
            f"({stuck[0]}); the distribution may hold part of the change until it is tried again."
        )
    log.warning("%s %s failed and was undone: %s", what, where, failures[0])
    raise Unavailable(f"Pulp failed while {what} {where}; nothing was changed: {failures[0]}")


Modify = Callable[[str, list[str]], Awaitable[object]]


def _modifiers(ctx: Context, add: bool) -> tuple[Modify, Modify]:
    if add:
        return ctx.pulp.add_content, ctx.pulp.remove_content
    return ctx.pulp.remove_content, ctx.pulp.add_content


async def _announce(
    session: AsyncSession, target: Target, build_id: int, change: Literal["added", "removed"]
) -> None:
    event = DistributionChanged(
        distribution_id=target.id, distribution=target.name, build_id=build_id, change=change
    )
    await add_event(session, event)
