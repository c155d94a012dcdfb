"""Read-side queries about builds, shaped as the reference's Build response."""

from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from shared.contracts.builds import (
    BuildArtifactOut,
    BuildOut,
    BuildPlatformOut,
    BuildRefOut,
    BuildsPage,
    BuildStatus,
    BuildTaskOut,
)
from shared.contracts.users import UserOut
from shared.db.models import Build, BuildTask, BuildTaskStatus
from shared.db.models.builds import FINISHED_STATUSES

BUILD_LOAD = (
    selectinload(Build.tasks).selectinload(BuildTask.platform),
    selectinload(Build.tasks).selectinload(BuildTask.ref),
    selectinload(Build.tasks).selectinload(BuildTask.artifacts),
    selectinload(Build.user),
    selectinload(Build.linked_builds),
)


def derive_status(build: Build) -> BuildStatus:
    statuses = [task.status for task in build.tasks]
    if build.failure_reason is not None:
        return BuildStatus.FAILED
    if statuses and all(s == BuildTaskStatus.CANCELLED for s in statuses):
        return BuildStatus.CANCELLED
    settled = all(
        t.status in FINISHED_STATUSES
        and (t.artifacts_stored_at is not None or t.status == BuildTaskStatus.CANCELLED)
        for t in build.tasks
    )
    if settled:
        failed = any(s in (BuildTaskStatus.FAILED, BuildTaskStatus.CANCELLED) for s in statuses)
        return BuildStatus.FAILED if failed else BuildStatus.COMPLETED
    if all(s == BuildTaskStatus.IDLE for s in statuses):
        return BuildStatus.QUEUED
    return BuildStatus.RUNNING


def tasks_by_status(build: Build) -> dict[str, int]:
    counts = Counter(BuildTaskStatus(t.status).name.lower() for t in build.tasks)
    return dict(sorted(counts.items()))


def task_out(task: BuildTask) -> BuildTaskOut:
    # Only the artifacts of the attempt that produced the task's current result count.
    finished = task.status in FINISHED_STATUSES
    current = [a for a in task.artifacts if finished and a.attempt == task.attempt and a.href]
    return BuildTaskOut(
        id=task.id,
        ts=task.ts,
        status=task.status,
        index=task.index,
        arch=task.arch,
        platform=BuildPlatformOut(
            id=task.platform.id,
            type=task.platform.type,
            name=task.platform.name,
            arch_list=task.platform.arch_list,
        ),
        ref=BuildRefOut(url=task.ref.url, git_ref=task.ref.git_ref),
        artifacts=[
            BuildArtifactOut(id=a.id, name=a.name, type=a.type, href=a.href or "") for a in current
        ],
        error=task.error,
        node_id=task.node_id,
        attempt=task.attempt,
        created_at=task.created_at,
        finished_at=task.finished_at,
    )


def build_out(build: Build) -> BuildOut:
    return BuildOut(
        id=build.id,
        created_at=build.created_at,
        tasks=[task_out(t) for t in sorted(build.tasks, key=lambda t: t.id)],
        user=UserOut(id=build.user.id, username=build.user.username, email=build.user.email),
        linked_builds=[linked.id for linked in build.linked_builds],
        mock_options=build.mock_options,
        status=derive_status(build),
        failure_reason=build.failure_reason,
        signed=build.signed,
    )


async def get_build(session: AsyncSession, build_id: int) -> BuildOut | None:
    build = await session.scalar(
        select(Build)
        .where(Build.id == build_id)
        .options(*BUILD_LOAD)
        .execution_options(populate_existing=True)
    )
    return build_out(build) if build is not None else None


async def list_builds(
    session: AsyncSession, *, page: int, page_size: int, signed: bool | None = None
) -> BuildsPage:
    """`signed` filters as the original's search filter did (SIGNING.md §2.3)."""
    where = [] if signed is None else [Build.signed.is_(signed)]
    total = await session.scalar(select(func.count()).select_from(Build).where(*where)) or 0
    builds = await session.scalars(
        select(Build)
        .where(*where)
        .order_by(Build.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
        .options(*BUILD_LOAD)
    )
    return BuildsPage(builds=[build_out(b) for b in builds], total_builds=total, current_page=page)
