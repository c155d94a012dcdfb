"""/api/v1/builds: reads from PostgreSQL, commands to the scheduler."""

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Response

from api_gateway.deps import RpcDep, SessionDep
from api_gateway.params import BuildId
from api_gateway.policy import People
from api_gateway.responses import BODY, COMMON, errors
from shared.contracts.bounds import INT32_MAX
from shared.contracts.builds import (
    CREATE_BUILD,
    DELETE_BUILD,
    RESTART_FAILED,
    BuildCommand,
    BuildCreate,
    BuildOut,
    BuildsPage,
    CreateBuild,
)
from shared.db.queries import builds as queries

router = APIRouter(prefix="/api/v1/builds", tags=["builds"], responses=errors(*COMMON))

PAGE_SIZE = 10  # the frontend computes its page count with 10


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="The same key and body within 24 h answer the first build; "
        "the same key with another body is a 409.",
    ),
]


@router.post("/", response_model=BuildOut, responses=errors(404, 409, *BODY))
async def create_build(
    body: BuildCreate, actor: People, rpc: RpcDep, idempotency_key: IdempotencyKey = None
) -> BuildOut | None:
    command = CreateBuild(actor=actor, build=body, idempotency_key=idempotency_key)
    return await rpc.call(CREATE_BUILD, command)


@router.get("/", response_model=BuildsPage)
async def list_builds(
    _: People,
    session: SessionDep,
    page_number: Annotated[
        int, Query(alias="pageNumber", ge=1, le=INT32_MAX, description="1-based")
    ],
    page_size: Annotated[int, Query(ge=1, le=100)] = PAGE_SIZE,
    signed: Annotated[bool | None, Query(description="Only signed (or unsigned) builds")] = None,
) -> BuildsPage:
    return await queries.list_builds(session, page=page_number, page_size=page_size, signed=signed)


@router.get("/{build_id}/", response_model=BuildOut, responses=errors(404))
async def get_build(build_id: BuildId, _: People, session: SessionDep) -> BuildOut:
    build = await queries.get_build(session, build_id)
    if build is None:
        raise HTTPException(404, f"Build with build_id={build_id} is not found")
    return build


@router.patch("/{build_id}/restart-failed", response_model=None, responses=errors(404, 409))
async def restart_failed(build_id: BuildId, actor: People, rpc: RpcDep) -> None:
    await rpc.call(RESTART_FAILED, BuildCommand(actor=actor, build_id=build_id))


@router.delete(
    "/{build_id}/remove", status_code=204, response_class=Response, responses=errors(404, 409)
)
async def remove_build(build_id: BuildId, actor: People, rpc: RpcDep) -> Response:
    await rpc.call(DELETE_BUILD, BuildCommand(actor=actor, build_id=build_id))
    return Response(status_code=204)
