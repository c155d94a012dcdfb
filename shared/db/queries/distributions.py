"""Read-side queries about distributions."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.distributions import DistributionOut, DistributionsPage
from shared.db.models import Distribution


async def list_distributions(
    session: AsyncSession, *, limit: int, offset: int
) -> list[DistributionOut]:
    rows = await session.scalars(
        select(Distribution).order_by(Distribution.id).limit(limit).offset(offset)
    )
    return [DistributionOut(id=d.id, name=d.name) for d in rows]


async def distributions_page(
    session: AsyncSession, *, page: int, page_size: int
) -> DistributionsPage:
    total = await session.scalar(select(func.count()).select_from(Distribution))
    listed = await list_distributions(session, limit=page_size, offset=(page - 1) * page_size)
    return DistributionsPage(
        distributions=listed, total_distributions=int(total or 0), current_page=page
    )
