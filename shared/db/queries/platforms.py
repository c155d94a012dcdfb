"""Read-side queries about platforms."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from shared.contracts.platforms import PlatformDetail, PlatformRepo, PlatformSummary
from shared.db.models import Platform


async def list_platforms(
    session: AsyncSession, *, limit: int, offset: int
) -> list[PlatformSummary]:
    rows = await session.scalars(select(Platform).order_by(Platform.id).limit(limit).offset(offset))
    return [PlatformSummary(id=p.id, name=p.name, arch_list=p.arch_list) for p in rows]


async def get_platform(session: AsyncSession, platform_id: int) -> PlatformDetail | None:
    platform = await session.scalar(
        select(Platform).where(Platform.id == platform_id).options(selectinload(Platform.repos))
    )
    if platform is None:
        return None
    return PlatformDetail(
        id=platform.id,
        name=platform.name,
        arch_list=platform.arch_list,
        type=platform.type,
        distr_type=platform.distr_type,
        distr_version=platform.distr_version,
        test_dist_name=platform.test_dist_name,
        data=platform.data,
        repos=[
            PlatformRepo(name=r.name, arch=r.arch, url=r.url, type=r.type, production=r.production)
            for r in platform.repos
        ],
    )
