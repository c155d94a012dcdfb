"""After the artifacts service filed a task's artifacts: release its dependents, finish builds."""

from sqlalchemy import Exists, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from shared.contracts.build_node import BuildTaskArtifactsStored
from shared.contracts.builds import BuildCompleted, BuildReposFailed, BuildReposReady
from shared.db.base import utcnow
from shared.db.models import Build, BuildTask, BuildTaskStatus, build_task_dependency
from shared.db.models.builds import FINISHED_STATUSES
from shared.db.queries.builds import derive_status, tasks_by_status
from shared.messaging.outbox import add_event


async def mark_repos_ready(session: AsyncSession, event: BuildReposReady) -> None:
    await session.execute(update(Build).where(Build.id == event.build_id).values(ready=True))
    await session.execute(
        update(BuildTask)
        .where(BuildTask.build_id == event.build_id, BuildTask.status == BuildTaskStatus.IDLE)
        .where(~_still_waiting())
        .values(runnable=True)
    )


async def fail_build(session: AsyncSession, event: BuildReposFailed) -> None:
    """The build cannot run (no repositories): cancel what has not started and say why."""
    build = await _locked_build(session, event.build_id)
    if build is None or build.failure_reason is not None:
        return
    build.failure_reason = event.reason
    now = utcnow()
    for task in build.tasks:
        if task.status == BuildTaskStatus.IDLE:
            task.status = BuildTaskStatus.CANCELLED
            task.finished_at = now
    await _complete_if_settled(session, build)


async def release_task(session: AsyncSession, event: BuildTaskArtifactsStored) -> None:
    build = await _locked_build(session, event.build_id)
    task = next((t for t in build.tasks if t.id == event.task_id), None) if build else None
    if build is None or task is None:
        return  # the build was deleted meanwhile
    stale = task.attempt != event.attempt or task.status not in FINISHED_STATUSES
    if stale or task.artifacts_stored_at is not None:
        return
    if event.error is not None:
        task.status = BuildTaskStatus.FAILED
        task.error = f"artifacts could not be stored: {event.error}"
    task.artifacts_stored_at = utcnow()
    # Failed and excluded tasks release their dependents too (docs/decisions/0002-leases.md).
    dependents = (
        await session.scalars(
            delete(build_task_dependency)
            .where(build_task_dependency.c.depends_on_id == task.id)
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
    await _complete_if_settled(session, build)


def _still_waiting() -> Exists:
    """The task of the enclosing statement still waits for another one."""
    return exists().where(build_task_dependency.c.task_id == BuildTask.id)


async def _locked_build(session: AsyncSession, build_id: int) -> Build | None:
    """The build row locked, so two replicas never both (or neither) see the last task."""
    return await session.scalar(
        select(Build)
        .where(Build.id == build_id)
        .options(selectinload(Build.tasks).selectinload(BuildTask.artifacts))
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def _complete_if_settled(session: AsyncSession, build: Build) -> None:
    if build.completed_at is not None:
        return
    settled = all(
        t.status == BuildTaskStatus.CANCELLED
        or (t.status in FINISHED_STATUSES and t.artifacts_stored_at is not None)
        for t in build.tasks
    )
    if not settled:
        return
    build.completed_at = utcnow()
    await add_event(
        session,
        BuildCompleted(
            build_id=build.id, status=derive_status(build), tasks_by_status=tasks_by_status(build)
        ),
    )
