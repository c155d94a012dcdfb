"""Deleting a build with everything hanging from it, in one transaction."""

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.restart import owned_build, refuse_while_signing
from shared.contracts.builds import BuildDeleted
from shared.contracts.messages import Actor
from shared.db.models import (
    Build,
    BuildTaskStatus,
    Distribution,
    Repository,
    TestTask,
    build_dependency,
    build_repo,
    distribution_packages,
)
from shared.errors import Conflict
from shared.messaging.outbox import add_event


async def delete_build(session: AsyncSession, actor: Actor, build_id: int) -> None:
    build = await owned_build(session, actor, build_id, "delete")
    if any(t.status == BuildTaskStatus.STARTED for t in build.tasks):
        raise Conflict(f"Build {build_id} has tasks being built; delete it when they finish.")
    await refuse_while_signing(session, build_id, "delete")
    await _refuse_while_distributed(session, build_id)
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


async def _refuse_while_distributed(session: AsyncSession, build_id: int) -> None:
    """Deleting the rows would leave the build's packages in the distributions' Pulp
    repositories with nothing left to remove them by."""
    names = (
        await session.scalars(
            select(Distribution.name)
            .join(distribution_packages)
            .where(distribution_packages.c.build_id == build_id)
            .order_by(Distribution.name)
        )
    ).all()
    if names:
        raise Conflict(
            f"Build {build_id} is in distribution(s) {', '.join(names)}; remove it from them first."
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
