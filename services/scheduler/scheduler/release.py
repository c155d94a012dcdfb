"""After the artifacts service filed a task's artifacts: release its dependents, finish builds.

Every handler locks the build row first: two replicas handling the last two tasks of a
build run one after the other, and the second sees the first's commit, so exactly one of
them finds nothing unsettled and emits `build.completed`. None loads the build's tasks.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Exists, delete, exists, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.task_bodies import store_bodies
from scheduler.testing import create_test_tasks
from shared.contracts.build_node import BuildTaskArtifactsStored
from shared.contracts.builds import BuildCompleted, BuildReposFailed, BuildReposReady, BuildStatus
from shared.db.base import utcnow
from shared.db.models import (
    Build,
    BuildTask,
    BuildTaskStatus,
    build_dependency,
    build_task_dependency,
)
from shared.db.models.builds import FINISHED_STATUSES, UNSETTLED
from shared.messaging.outbox import add_event


@dataclass(frozen=True)
class LockedBuild:
    id: int
    ready: bool
    failure_reason: str | None
    completed_at: datetime | None


async def mark_repos_ready(session: AsyncSession, event: BuildReposReady) -> None:
    """The build's tasks get their Task bodies, then those with nothing to wait for run."""
    build = await _locked_build(session, event.build_id)
    if build is None:
        return
    await session.execute(update(Build).where(Build.id == build.id).values(ready=True))
    idle = (BuildTask.build_id == build.id) & (BuildTask.status == BuildTaskStatus.IDLE)
    await store_bodies(session, idle)
    await session.execute(update(BuildTask).where(idle, ~_still_waiting()).values(runnable=True))
    # Builds that link this one and were ready first: their bodies now list its repositories.
    linking = select(build_dependency.c.build_id).where(
        build_dependency.c.linked_build_id == build.id
    )
    await store_bodies(
        session,
        BuildTask.build_id.in_(linking)
        & (BuildTask.status == BuildTaskStatus.IDLE)
        & BuildTask.task_body.is_not(None),
    )


async def fail_build(session: AsyncSession, event: BuildReposFailed) -> None:
    """The build cannot run (no repositories): cancel what has not started and say why."""
    build = await _locked_build(session, event.build_id)
    if build is None or build.failure_reason is not None:
        return
    await session.execute(
        update(Build).where(Build.id == build.id).values(failure_reason=event.reason)
    )
    await session.execute(
        update(BuildTask)
        .where(BuildTask.build_id == build.id, BuildTask.status == BuildTaskStatus.IDLE)
        .values(status=BuildTaskStatus.CANCELLED, finished_at=utcnow(), runnable=False)
    )
    await _complete_if_settled(session, build, event.reason)


async def release_task(session: AsyncSession, event: BuildTaskArtifactsStored) -> None:
    build = await _locked_build(session, event.build_id)
    task = await session.execute(
        select(BuildTask.attempt, BuildTask.status, BuildTask.artifacts_stored_at).where(
            BuildTask.id == event.task_id, BuildTask.build_id == event.build_id
        )
    )
    found = task.one_or_none()
    if build is None or found is None:
        return  # the build was deleted meanwhile
    attempt, status, stored_at = found
    if attempt != event.attempt or status not in FINISHED_STATUSES or stored_at is not None:
        return
    changes: dict[str, object] = {"artifacts_stored_at": utcnow()}
    if event.error is not None:
        changes |= {
            "status": BuildTaskStatus.FAILED,
            "error": f"artifacts could not be stored: {event.error}",
        }
    await session.execute(update(BuildTask).where(BuildTask.id == event.task_id).values(changes))
    if event.error is None and status == BuildTaskStatus.COMPLETED:
        await create_test_tasks(session, event.task_id)
    # Failed and excluded tasks release their dependents too (docs/decisions/0002-leases.md).
    dependents = (
        await session.scalars(
            delete(build_task_dependency)
            .where(build_task_dependency.c.depends_on_id == event.task_id)
            .returning(build_task_dependency.c.task_id)
        )
    ).all()
    if dependents and build.ready:
        await session.execute(
            update(BuildTask)
            .where(BuildTask.id.in_(dependents), BuildTask.status == BuildTaskStatus.IDLE)
            .where(~_still_waiting())
            .values(runnable=True)
        )
    await _complete_if_settled(session, build, build.failure_reason)


def _still_waiting() -> Exists:
    """The task of the enclosing statement still waits for another one."""
    return exists().where(build_task_dependency.c.task_id == BuildTask.id)


async def _locked_build(session: AsyncSession, build_id: int) -> LockedBuild | None:
    """The build row locked, so two replicas never both (or neither) see the last task."""
    row = (
        await session.execute(
            select(Build.id, Build.ready, Build.failure_reason, Build.completed_at)
            .where(Build.id == build_id)
            .with_for_update()
        )
    ).one_or_none()
    return None if row is None else LockedBuild(*row)


async def _complete_if_settled(
    session: AsyncSession, build: LockedBuild, failure_reason: str | None
) -> None:
    if build.completed_at is not None:
        return
    unsettled = exists().where(BuildTask.build_id == build.id, text(f"({UNSETTLED})"))
    if await session.scalar(select(unsettled)):
        return
    counts = {
        BuildTaskStatus(status): count
        for status, count in await session.execute(
            select(BuildTask.status, func.count())
            .where(BuildTask.build_id == build.id)
            .group_by(BuildTask.status)
        )
    }
    await session.execute(update(Build).where(Build.id == build.id).values(completed_at=utcnow()))
    await add_event(
        session,
        BuildCompleted(
            build_id=build.id,
            status=settled_status(failure_reason, counts),
            tasks_by_status={s.name.lower(): n for s, n in sorted(counts.items(), key=_name)},
        ),
    )


def _name(item: tuple[BuildTaskStatus, int]) -> str:
    return item[0].name.lower()


def settled_status(failure_reason: str | None, counts: dict[BuildTaskStatus, int]) -> BuildStatus:
    """The status of a build whose tasks are all settled (as derive_status says it)."""
    if failure_reason is not None:
        return BuildStatus.FAILED
    if counts and set(counts) == {BuildTaskStatus.CANCELLED}:
        return BuildStatus.CANCELLED
    failed = counts.get(BuildTaskStatus.FAILED, 0) + counts.get(BuildTaskStatus.CANCELLED, 0)
    return BuildStatus.FAILED if failed else BuildStatus.COMPLETED
