"""Read-side queries about build tasks, for the node endpoints."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import BuildTask


async def held_by_other_nodes(
    session: AsyncSession, task_ids: list[int], node_id: str
) -> list[int]:
    """Which of these tasks another node holds (or last held): not this node's to ping."""
    rows = await session.scalars(
        select(BuildTask.id)
        .where(BuildTask.id.in_(task_ids), BuildTask.node_id.is_not(None))
        .where(BuildTask.node_id != node_id)
        .order_by(BuildTask.id)
    )
    return list(rows)
