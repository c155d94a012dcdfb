"""/api/v1/builds: reads from PostgreSQL, commands to the scheduler."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response
from pydantic import AfterValidator

from api_gateway.deps import RpcDep, SessionDep
from api_gateway.params import BuildId, QueryId, SearchText
from api_gateway.policy import People
from api_gateway.responses import BODY, COMMON, errors
from shared.contracts.bounds import ARCH_MAX, INT32_MAX, REF_MAX, Arch, clean_text
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


RefText = Annotated[str, Query(max_length=REF_MAX), AfterValidator(clean_text)]
ArchQuery = Annotated[Arch, Query(max_length=ARCH_MAX)]
Epoch = Annotated[int, Query(ge=0, le=INT32_MAX)]


def feed_filters(
    created_by: Annotated[QueryId | None, Query(description="the author's user id")] = None,
    project: Annotated[SearchText | None, Query(description="part of a ref's url")] = None,
    ref: Annotated[RefText | None, Query(description="part of a ref's git ref")] = None,
    rpm_name: SearchText | None = None,
    rpm_epoch: Epoch | None = None,
    rpm_version: SearchText | None = None,
    rpm_release: SearchText | None = None,
    rpm_arch: ArchQuery | None = None,
    platform_id: QueryId | None = None,
    build_task_arch: ArchQuery | None = None,
    released: bool | None = None,
    signed: bool | None = None,
) -> queries.FeedFilters:
    """Every given filter must hold; the rpm_* ones are exact, `project` and `ref` parts."""
    return queries.FeedFilters(
        created_by=created_by,
        project=project or None,
        ref=ref or None,
        rpm_name=rpm_name or None,
        rpm_epoch=rpm_epoch,
        rpm_version=rpm_version or None,
        rpm_release=rpm_release or None,
        rpm_arch=rpm_arch,
        platform_id=platform_id,
        build_task_arch=build_task_arch,
        released=released,
        signed=signed,
    )


@router.get("/", response_model=BuildsPage)
async def list_builds(
    _: People,
    session: SessionDep,
    page_number: Annotated[
        int, Query(alias="pageNumber", ge=1, le=INT32_MAX, description="1-based")
    ],
    filters: Annotated[queries.FeedFilters, Depends(feed_filters)],
    page_size: Annotated[int, Query(ge=1, le=100)] = PAGE_SIZE,
) -> BuildsPage:
    """Newest first; the search filters (CLIENTS §5.2) combine with AND."""
    return await queries.list_builds(
        session, page=page_number, page_size=page_size, filters=filters
    )


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
