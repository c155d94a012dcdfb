"""Read-side queries about test tasks, shaped as the frontend reads them."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.test_tasks import TestTaskOut
from shared.db.models import BuildTask, TestTask

LATEST = 0  # revision 0 means the latest, as in the reference


async def tests_of(
    session: AsyncSession, build_task_id: int, revision: int
) -> list[TestTaskOut] | None:
    """The tests of one revision (the latest for 0) of a build task; None: no such task."""
    if await session.scalar(select(BuildTask.id).where(BuildTask.id == build_task_id)) is None:
        return None
    if revision == LATEST:
        latest = await session.scalar(
            select(func.max(TestTask.revision)).where(TestTask.build_task_id == build_task_id)
        )
        if latest is None:
            return []
        revision = latest
    rows = await session.scalars(
        select(TestTask)
        .where(TestTask.build_task_id == build_task_id, TestTask.revision == revision)
        .order_by(TestTask.id)
    )
    return [
        TestTaskOut(
            id=row.id,
            package_name=row.package_name,
            package_version=row.package_version,
            package_release=row.package_release,
            status=row.status,
            revision=row.revision,
            alts_response=row.alts_response,
            error=row.error,
            dispatch_attempts=row.dispatch_attempts,
            alts_reply=row.alts_reply,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )
        for row in rows
    ]
