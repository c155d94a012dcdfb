"""Restarting a build's failed tasks; who may change a build."""

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from scheduler.task_bodies import store_bodies
from shared.contracts.messages import Actor
from shared.db.models import (
    Build,
    BuildTask,
    BuildTaskStatus,
    SignTask,
    build_task_dependency,
)
from shared.db.models.signing import IN_FLIGHT
from shared.errors import Conflict, Forbidden, NotFound


async def owned_build(session: AsyncSession, actor: Actor, build_id: int, action: str) -> Build:
    build = await session.scalar(
        select(Build)
        .where(Build.id == build_id)
        .options(selectinload(Build.tasks))
        .with_for_update()
    )
    if build is None:
        raise NotFound(f"Build with build_id={build_id} is not found")
    if build.user_id != actor.user_id and not actor.is_admin:
        raise Forbidden(f"Only the owner of build {build_id} or an administrator may {action} it.")
    return build


async def restart_failed(session: AsyncSession, actor: Actor, build_id: int) -> None:
    """Failed tasks go back to the queue at once, one after another in (index, id) order."""
    build = await owned_build(session, actor, build_id, "restart")
    await refuse_while_signing(session, build_id, "restart")
    failed = sorted(
        (t for t in build.tasks if t.status == BuildTaskStatus.FAILED),
        key=lambda t: (t.index, t.id),
    )
    for previous, task in zip([None, *failed], failed, strict=False):
        task.status = BuildTaskStatus.IDLE
        task.ts = task.lease_expires_at = task.node_id = None
        task.finished_at = task.artifacts_stored_at = None
        task.error = None
        task.runnable = previous is None
        if previous is not None:
            await session.execute(
                build_task_dependency.insert().values(task_id=task.id, depends_on_id=previous.id)
            )
    if failed:
        build.completed_at = None
        build.signed = False  # the new packages need signing again
        # The platform may have changed since: the restarted tasks get fresh bodies.
        await store_bodies(session, BuildTask.id.in_([t.id for t in failed]))


async def refuse_while_signing(session: AsyncSession, build_id: int, action: str) -> None:
    """Deleting or restarting a build under a sign task would pull packages from under it."""
    busy = await session.scalar(
        select(exists().where(SignTask.build_id == build_id, SignTask.status.in_(IN_FLIGHT)))
    )
    if busy:
        raise Conflict(f"Build {build_id} is being signed; {action} it when signing ends.")
