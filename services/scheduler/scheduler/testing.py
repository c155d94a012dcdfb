"""Test tasks in the database: created after a build task's packages are stored, results
recorded, restarts, and the timeout of tests that never got a result (REFERENCE §5.6)."""

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.checks import packages_to_test, result_logs, result_status, schedule_body
from scheduler.restart import owned_build
from shared.contracts.messages import Actor
from shared.contracts.test_tasks import (
    OkReply,
    TestResult,
    TestTaskFinished,
    TestTasksCreated,
)
from shared.db.base import utcnow
from shared.db.models import (
    BuildArtifact,
    BuildTask,
    BuildTaskStatus,
    Platform,
    Repository,
    TestTask,
    TestTaskStatus,
    build_dependency,
    build_repo,
)
from shared.errors import Conflict, Invalid, NotFound
from shared.messaging.outbox import add_event

RPM_REPO_TYPE = "rpm"
TIMEOUT_BATCH = 500


async def create_test_tasks(session: AsyncSession, build_task_id: int) -> TestTasksCreated | None:
    """A new revision of tests for the binary packages of the task's last attempt; None when
    the task has none. The caller holds a lock that keeps revisions of this task apart."""
    task = (
        await session.execute(
            select(
                BuildTask.id,
                BuildTask.build_id,
                BuildTask.arch,
                BuildTask.attempt,
                Platform.test_dist_name,
                Platform.distr_version,
            )
            .join(Platform, Platform.id == BuildTask.platform_id)
            .where(BuildTask.id == build_task_id)
        )
    ).one_or_none()
    if task is None:
        return None
    names = await session.scalars(
        select(BuildArtifact.name)
        .where(
            BuildArtifact.build_task_id == task.id,
            BuildArtifact.attempt == task.attempt,
            BuildArtifact.type == "rpm",
        )
        .order_by(BuildArtifact.id)
    )
    packages = packages_to_test(names)
    if not packages:
        return None
    previous = await session.scalar(
        select(func.max(TestTask.revision)).where(TestTask.build_task_id == task.id)
    )
    revision = (previous or 0) + 1
    repos = await _repositories(session, task.build_id, task.arch)
    rows = [
        TestTask(
            build_task_id=task.id,
            package_name=p.name,
            package_version=p.version,
            package_release=p.release,
            env_arch=task.arch,
            status=TestTaskStatus.CREATED,
            revision=revision,
        )
        for p in packages
    ]
    session.add_all(rows)
    await session.flush()
    for row, package in zip(rows, packages, strict=True):
        row.schedule_body = schedule_body(
            row.id,
            dist_name=task.test_dist_name,
            dist_version=task.distr_version,
            arch=task.arch,
            package=package,
            repositories=repos,
        )
    await session.flush()
    created = TestTasksCreated(
        build_id=task.build_id,
        build_task_id=task.id,
        revision=revision,
        arch=task.arch,
        test_task_ids=[row.id for row in rows],
    )
    await add_event(session, created)
    return created


async def _repositories(session: AsyncSession, build_id: int, arch: str) -> list[tuple[str, str]]:
    """The package repositories of the task's arch, of the build and of the builds it links
    (not every arch of the build, fixing §11.16; no debug repositories)."""
    linked = select(build_dependency.c.linked_build_id).where(
        build_dependency.c.build_id == build_id
    )
    rows = await session.execute(
        select(Repository.name, Repository.url)
        .join(build_repo, build_repo.c.repository_id == Repository.id)
        .where(
            (build_repo.c.build_id == build_id) | build_repo.c.build_id.in_(linked),
            Repository.type == RPM_REPO_TYPE,
            Repository.arch == arch,
            Repository.debug.is_(False),
        )
        .order_by(build_repo.c.build_id != build_id, Repository.id)
    )
    return [(name, url) for name, url in rows]


async def record_result(session: AsyncSession, test_task_id: int, result: TestResult) -> OkReply:
    """The first result counts; a repeated post answers ok again and changes nothing. A late
    result of a task failed for lack of one still counts."""
    try:
        logs = result_logs(result.result)
    except ValueError as exc:
        raise Invalid(f"Test result of test task {test_task_id}: {exc}") from None
    row = await session.scalar(
        select(TestTask).where(TestTask.id == test_task_id).with_for_update()
    )
    if row is None:
        raise NotFound(f"Test task with id={test_task_id} is not found")
    if row.alts_response is not None:
        return OkReply(ok=True)
    row.status = result_status(result.result)
    row.alts_response = result.model_dump(mode="json")
    row.finished_at = utcnow()
    row.claimed_until = None
    row.error = None
    build_id = await session.scalar(
        select(BuildTask.build_id).where(BuildTask.id == row.build_task_id)
    )
    await add_event(
        session,
        TestTaskFinished(
            test_task_id=row.id,
            build_id=build_id or 0,
            build_task_id=row.build_task_id,
            revision=row.revision,
            arch=row.env_arch,
            status=row.status,
            logs=logs,
        ),
    )
    return OkReply(ok=True)


async def restart_build_tests(session: AsyncSession, actor: Actor, build_id: int) -> OkReply:
    await owned_build(session, actor, build_id, "restart the tests of")
    task_ids = (
        await session.scalars(
            select(BuildTask.id)
            .where(
                BuildTask.build_id == build_id,
                BuildTask.status == BuildTaskStatus.COMPLETED,
                BuildTask.artifacts_stored_at.is_not(None),
            )
            .order_by(BuildTask.id)
        )
    ).all()
    if not task_ids:
        raise Conflict(f"Build {build_id} has no completed task whose packages could be tested")
    for task_id in task_ids:
        await _new_revision(session, task_id)
    return OkReply(ok=True)


async def restart_task_tests(session: AsyncSession, actor: Actor, build_task_id: int) -> OkReply:
    task = (
        await session.execute(
            select(BuildTask.build_id, BuildTask.status, BuildTask.artifacts_stored_at).where(
                BuildTask.id == build_task_id
            )
        )
    ).one_or_none()
    if task is None:
        raise NotFound(f"Build task with id={build_task_id} is not found")
    await owned_build(session, actor, task.build_id, "restart the tests of")
    if task.status != BuildTaskStatus.COMPLETED or task.artifacts_stored_at is None:
        raise Conflict(
            f"Build task {build_task_id} has not completed with stored packages; "
            "only a completed task can be tested"
        )
    if await _new_revision(session, build_task_id) is None:
        raise Conflict(f"Build task {build_task_id} has no binary package to test")
    return OkReply(ok=True)


async def _new_revision(session: AsyncSession, build_task_id: int) -> TestTasksCreated | None:
    """Tests not yet sent of older revisions are superseded: ALTS never gets them."""
    created = await create_test_tasks(session, build_task_id)
    if created is not None:
        await session.execute(
            update(TestTask)
            .where(
                TestTask.build_task_id == build_task_id,
                TestTask.revision < created.revision,
                TestTask.status == TestTaskStatus.CREATED,
            )
            .values(
                status=TestTaskStatus.FAILED,
                finished_at=utcnow(),
                error=f"Superseded by revision {created.revision} before it was sent to ALTS",
            )
        )
    return created


async def fail_overdue(session: AsyncSession, timeout_seconds: float) -> int:
    """Tests sent to ALTS longer ago than the timeout without a result fail, with the reason."""
    overdue = (
        select(TestTask.id)
        .where(
            TestTask.status == TestTaskStatus.STARTED,
            TestTask.dispatched_at < utcnow() - timedelta(seconds=timeout_seconds),
        )
        .order_by(TestTask.id)
        .limit(TIMEOUT_BATCH)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    failed = (
        await session.execute(
            update(TestTask)
            .where(TestTask.id.in_(overdue))
            .values(
                status=TestTaskStatus.FAILED,
                finished_at=utcnow(),
                error=f"No result from ALTS within {timeout_seconds:g} s of sending the test",
            )
            .returning(TestTask.id, TestTask.build_task_id, TestTask.revision, TestTask.env_arch)
        )
    ).all()
    build_of = await _build_ids(session, {row.build_task_id for row in failed})
    for row in failed:
        await add_event(
            session,
            TestTaskFinished(
                test_task_id=row.id,
                build_id=build_of.get(row.build_task_id, 0),
                build_task_id=row.build_task_id,
                revision=row.revision,
                arch=row.env_arch,
                status=TestTaskStatus.FAILED,
            ),
        )
    return len(failed)


async def _build_ids(session: AsyncSession, task_ids: set[int]) -> dict[int, int]:
    if not task_ids:
        return {}
    rows = await session.execute(
        select(BuildTask.id, BuildTask.build_id).where(BuildTask.id.in_(task_ids))
    )
    return {row.id: row.build_id for row in rows}
