"""/api/v1/distro: reads from PostgreSQL, commands to the artifacts service."""

from typing import Annotated

from fastapi import APIRouter, Query

from api_gateway.deps import RpcDep, SessionDep
from api_gateway.params import BuildId, DistributionName, Offset
from api_gateway.policy import Admin, People
from api_gateway.responses import BODY, COMMON, errors
from shared.contracts.bounds import INT32_MAX
from shared.contracts.distributions import (
    ADD_TO_DISTRIBUTION,
    CREATE_DISTRIBUTION,
    REMOVE_FROM_DISTRIBUTION,
    ChangeDistribution,
    CreateDistribution,
    DistributionChangeReply,
    DistributionCreate,
    DistributionOut,
    DistributionsPage,
)
from shared.db.queries import distributions as queries

router = APIRouter(prefix="/api/v1/distro", tags=["distributions"], responses=errors(*COMMON))

PAGE_SIZE = 10  # as the builds feed


@router.post("/", response_model=DistributionOut, responses=errors(404, 409, *BODY))
async def create_distribution(
    body: DistributionCreate, actor: Admin, rpc: RpcDep
) -> DistributionOut | None:
    return await rpc.call(CREATE_DISTRIBUTION, CreateDistribution(actor=actor, distribution=body))


@router.get("/", response_model=list[DistributionOut] | DistributionsPage)
async def list_distributions(
    _: People,
    session: SessionDep,
    page_number: Annotated[
        int | None,
        Query(
            alias="pageNumber",
            ge=1,
            le=INT32_MAX,
            description="1-based; when given, a page of 10 with the total count",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    offset: Offset = 0,
) -> list[DistributionOut] | DistributionsPage:
    if page_number is not None:
        return await queries.distributions_page(session, page=page_number, page_size=PAGE_SIZE)
    return await queries.list_distributions(session, limit=limit, offset=offset)


@router.post(
    "/add/{build_id}/{distribution}/",
    response_model=DistributionChangeReply,
    responses=errors(404, 409),
)
async def add_to_distribution(
    build_id: BuildId, distribution: DistributionName, actor: People, rpc: RpcDep
) -> DistributionChangeReply | None:
    command = ChangeDistribution(actor=actor, build_id=build_id, distribution=distribution)
    return await rpc.call(ADD_TO_DISTRIBUTION, command)


@router.post(
    "/remove/{build_id}/{distribution}/",
    response_model=DistributionChangeReply,
    responses=errors(404, 409),
)
async def remove_from_distribution(
    build_id: BuildId, distribution: DistributionName, actor: People, rpc: RpcDep
) -> DistributionChangeReply | None:
    command = ChangeDistribution(actor=actor, build_id=build_id, distribution=distribution)
    return await rpc.call(REMOVE_FROM_DISTRIBUTION, command)
