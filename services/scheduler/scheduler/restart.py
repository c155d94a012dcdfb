"""Restarting a build's failed tasks, and deleting a build with everything hanging from it."""

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from shared.contracts.builds import BuildDeleted
from shared.contracts.messages import Actor
from shared.db.models import (
    Build,
    BuildTaskStatus,
    Repository,
    TestTask,
    build_dependency,
    build_repo,
    build_task_dependency,
)
from shared.errors import Conflict, Forbidden, NotFound
from shared.messaging.outbox import add_event


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


async def delete_build(session: AsyncSession, actor: Actor, build_id: int) -> None:
    build = await owned_build(session, actor, build_id, "delete")
    if any(t.status == BuildTaskStatus.STARTED for t in build.tasks):
        raise Conflict(f"Build {build_id} has tasks being built; delete it when they finish.")
    linking = (
        await session.scalars(
            select(build_dependency.c.build_id).where(
                build_dependency.c.linked_build_id == build_id
            )
        )
    ).all()
    if linking:
        raise Conflict(
            f"Build {build_id} is linked by build(s) {', '.join(map(str, linking))}; "
            "delete those first."
        )
    repos = await _repositories_of(session, build)
    # The foreign keys cascade to refs, tasks, dependencies, artifacts, rpms and links.
    await session.execute(delete(Build).where(Build.id == build_id))
    if repos:
        await session.execute(delete(Repository).where(Repository.id.in_([r.id for r in repos])))
    await add_event(
        session,
        BuildDeleted(
            build_id=build_id, repository_hrefs=[r.pulp_href for r in repos if r.pulp_href]
        ),
    )


async def _repositories_of(session: AsyncSession, build: Build) -> list[Repository]:
    """The build's own Pulp repositories and its tasks' test-log repositories."""
    task_ids = [t.id for t in build.tasks]
    own = select(build_repo.c.repository_id).where(build_repo.c.build_id == build.id)
    tests = select(TestTask.repository_id).where(TestTask.build_task_id.in_(task_ids))
    rows = await session.scalars(
        select(Repository).where(Repository.id.in_(own) | Repository.id.in_(tests))
    )
    return list(rows)
