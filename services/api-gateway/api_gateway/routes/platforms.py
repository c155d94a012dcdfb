"""/api/v1/platforms: reads from PostgreSQL, commands to the scheduler."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api_gateway.deps import RpcDep, SessionDep
from api_gateway.params import Offset, PlatformId
from api_gateway.policy import Admin, People
from api_gateway.responses import BODY, COMMON, errors
from shared.contracts.platforms import (
    CREATE_PLATFORM,
    MODIFY_PLATFORM,
    CreatePlatform,
    ModifyPlatform,
    PlatformCreate,
    PlatformDetail,
    PlatformModify,
    PlatformSummary,
)
from shared.db.queries import platforms as queries

router = APIRouter(prefix="/api/v1/platforms", tags=["platforms"], responses=errors(*COMMON))


@router.get("/", response_model=list[PlatformSummary])
async def list_platforms(
    _: People,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    offset: Offset = 0,
) -> list[PlatformSummary]:
    return await queries.list_platforms(session, limit=limit, offset=offset)


@router.get("/{platform_id}/", response_model=PlatformDetail, responses=errors(404))
async def get_platform(platform_id: PlatformId, _: People, session: SessionDep) -> PlatformDetail:
    platform = await queries.get_platform(session, platform_id)
    if platform is None:
        raise HTTPException(404, f"Platform with id={platform_id} is not found")
    return platform


@router.post("/", response_model=PlatformSummary, responses=errors(409, *BODY))
async def create_platform(
    body: PlatformCreate, actor: Admin, rpc: RpcDep
) -> PlatformSummary | None:
    return await rpc.call(CREATE_PLATFORM, CreatePlatform(actor=actor, platform=body))


@router.put("/", response_model=PlatformSummary, responses=errors(404, 409, *BODY))
async def modify_platform(
    body: PlatformModify, actor: Admin, rpc: RpcDep
) -> PlatformSummary | None:
    return await rpc.call(MODIFY_PLATFORM, ModifyPlatform(actor=actor, platform=body))
