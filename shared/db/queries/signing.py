"""Reading sign keys and sign tasks in the shapes the API answers."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from shared.contracts.signing import SignKeyOut, SignTaskOut
from shared.db.models import SignKey, SignTask

# Neither list has pagination in the original; a bound keeps one request small.
LIST_LIMIT = 10_000


def key_out(key: SignKey) -> SignKeyOut:
    return SignKeyOut(
        id=key.id,
        name=key.name,
        description=key.description,
        keyid=key.keyid,
        public_url=key.public_url,
        inserted=key.inserted,
    )


def task_out(task: SignTask, key: SignKey) -> SignTaskOut:
    return SignTaskOut(
        id=task.id,
        build_id=task.build_id,
        sign_key=key_out(key),
        status=task.status,
        error_message=task.error_message,
        log_href=task.log_href,
    )


async def list_keys(session: AsyncSession) -> list[SignKeyOut]:
    rows = await session.scalars(select(SignKey).order_by(SignKey.id).limit(LIST_LIMIT))
    return [key_out(key) for key in rows]


async def list_tasks(session: AsyncSession, build_id: int | None) -> list[SignTaskOut]:
    """Ordered by id: the frontend takes the last one as the build's signing state."""
    query = select(SignTask).options(selectinload(SignTask.sign_key)).order_by(SignTask.id)
    if build_id:
        query = query.where(SignTask.build_id == build_id)
    rows = await session.scalars(query.limit(LIST_LIMIT))
    return [task_out(task, task.sign_key) for task in rows]
