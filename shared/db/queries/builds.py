"""Read-side queries about builds, shaped as the reference's Build response."""

from collections import Counter
from dataclasses import dataclass, fields

from sqlalchemy import ColumnElement, exists, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, selectinload

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
from shared.db.models import Build, BuildArtifact, BuildTask, BuildTaskRef, BuildTaskStatus
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
        ref=BuildRefOut(
            url=task.ref.url,
            git_ref=task.ref.git_ref,
            ref_type=task.ref.ref_type,
            is_module=task.ref.is_module,
        ),
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


@dataclass(frozen=True)
class FeedFilters:
    """The feed's search (CLIENTS §5.2); every given filter must hold (docs/decisions/0016).

    The task-level filters hold for one and the same task: its platform and arch, its ref
    (`project` and `ref` are case-insensitive substrings of the ref's url and git ref) and
    one package of its current attempt.
    """

    created_by: int | None = None
    project: str | None = None
    ref: str | None = None
    rpm_name: str | None = None
    rpm_epoch: int | None = None
    rpm_version: str | None = None
    rpm_release: str | None = None
    rpm_arch: str | None = None
    platform_id: int | None = None
    build_task_arch: str | None = None
    released: bool | None = None
    signed: bool | None = None

    @property
    def given(self) -> dict[str, object]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


RPM_COLUMNS = {
    "rpm_name": BuildArtifact.rpm_name,
    "rpm_epoch": BuildArtifact.rpm_epoch,
    "rpm_version": BuildArtifact.rpm_version,
    "rpm_release": BuildArtifact.rpm_release,
    "rpm_arch": BuildArtifact.rpm_arch,
}


def _contains(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def feed_condition(filters: FeedFilters) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if filters.created_by is not None:
        conditions.append(Build.user_id == filters.created_by)
    # Plain `released` / `NOT released`: what the partial indexes' predicates prove.
    if filters.released is not None:
        conditions.append(_flag(Build.released, filters.released))
    if filters.signed is not None:
        conditions.append(_flag(Build.signed, filters.signed))
    task = _task_condition(filters)
    if task is not None:
        conditions.append(task)
    return and_all(conditions)


def _flag(column: InstrumentedAttribute[bool], wanted: bool) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = column.expression
    return condition if wanted else ~condition


def _task_condition(filters: FeedFilters) -> ColumnElement[bool] | None:
    given = filters.given
    on_task: list[ColumnElement[bool]] = []
    if filters.platform_id is not None:
        on_task.append(BuildTask.platform_id == filters.platform_id)
    if filters.build_task_arch is not None:
        on_task.append(BuildTask.arch == filters.build_task_arch)
    on_ref = []
    if filters.project is not None:
        on_ref.append(BuildTaskRef.url.ilike(_contains(filters.project), escape="\\"))
    if filters.ref is not None:
        on_ref.append(BuildTaskRef.git_ref.ilike(_contains(filters.ref), escape="\\"))
    on_rpm = [column == given[name] for name, column in RPM_COLUMNS.items() if name in given]
    if not (on_task or on_rpm):
        # Refs know their build: no need to go through the tasks.
        if not on_ref:
            return None
        return exists().where(BuildTaskRef.build_id == Build.id, *on_ref).correlate(Build)
    query = select(BuildTask.id).where(BuildTask.build_id == Build.id, *on_task)
    if on_ref:
        query = query.join(BuildTaskRef, BuildTaskRef.id == BuildTask.ref_id).where(*on_ref)
    if on_rpm:
        query = query.join(
            BuildArtifact,
            (BuildArtifact.build_task_id == BuildTask.id)
            & (BuildArtifact.attempt == BuildTask.attempt),
        ).where(BuildArtifact.type == "rpm", *on_rpm)
    return exists(query.correlate(Build))


def and_all(conditions: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    combined: ColumnElement[bool] = true()
    for condition in conditions:
        combined = combined & condition
    return combined


async def list_builds(
    session: AsyncSession,
    *,
    page: int,
    page_size: int,
    filters: FeedFilters | None = None,
) -> BuildsPage:
    condition = feed_condition(filters or FeedFilters())
    total = await session.scalar(select(func.count()).select_from(Build).where(condition)) or 0
    builds = await session.scalars(
        select(Build)
        .where(condition)
        .order_by(Build.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
        .options(*BUILD_LOAD)
    )
    return BuildsPage(builds=[build_out(b) for b in builds], total_builds=total, current_page=page)
