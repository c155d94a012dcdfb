"""/api/v1/sign-keys and /api/v1/sign-tasks: signing, wire-compatible with SIGNING.md §1
(trailing slashes as there; the Sign Node always sends them)."""

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query

from api_gateway.deps import RpcDep, SessionDep
from api_gateway.params import SignKeyId, SignTaskId
from api_gateway.policy import Admin, People, SignNode
from api_gateway.responses import BODY, COMMON, errors
from shared.contracts.bounds import INT32_MAX
from shared.contracts.signing import (
    CANCEL_SIGN_TASK,
    COMPLETE_SIGN_TASK,
    CREATE_SIGN_KEY,
    CREATE_SIGN_TASK,
    GET_SIGN_TASK,
    UPDATE_SIGN_KEY,
    AvailableSignTask,
    CancelSignTask,
    ClaimSignTask,
    CompleteReply,
    CompleteSignTask,
    CreateSignKey,
    CreateSignTask,
    GetSignTaskRequest,
    SignKeyCreate,
    SignKeyOut,
    SignKeyUpdate,
    SignTaskComplete,
    SignTaskCreate,
    SignTaskOut,
    UpdateSignKey,
)
from shared.db.queries.signing import list_keys, list_tasks
from shared.errors import Unavailable

keys = APIRouter(prefix="/api/v1/sign-keys", tags=["signing"], responses=errors(*COMMON))
tasks = APIRouter(prefix="/api/v1/sign-tasks", tags=["signing"], responses=errors(*COMMON))


T = TypeVar("T")


def _answered(result: T | None) -> T:
    if result is None:
        raise Unavailable("The scheduler gave no answer; try again.")
    return result


@keys.get("/", response_model=list[SignKeyOut])
async def get_sign_keys(_: People, session: SessionDep) -> list[SignKeyOut]:
    return await list_keys(session)


@keys.post("/new/", response_model=SignKeyOut, responses=errors(*BODY, 409))
async def create_sign_key(body: SignKeyCreate, actor: Admin, rpc: RpcDep) -> SignKeyOut:
    """Key ids as gnupg prints them (16 hex digits, stored upper-case); the id must end the
    fingerprint. A known keyid or fingerprint is a 409."""
    return _answered(await rpc.call(CREATE_SIGN_KEY, CreateSignKey(actor=actor, key=body)))


@keys.put("/{sign_key_id}/", response_model=SignKeyOut, responses=errors(*BODY, 404, 409))
async def update_sign_key(
    sign_key_id: SignKeyId,
    body: SignKeyUpdate,
    actor: Admin,
    rpc: RpcDep,
) -> SignKeyOut:
    """Changes only the fields given."""
    command = UpdateSignKey(actor=actor, key_id=sign_key_id, changes=body)
    return _answered(await rpc.call(UPDATE_SIGN_KEY, command))


@tasks.get("/", response_model=list[SignTaskOut])
async def get_sign_tasks(
    _: People,
    session: SessionDep,
    build_id: Annotated[int | None, Query(ge=0, le=INT32_MAX)] = None,
) -> list[SignTaskOut]:
    """Ordered by id (the last is the build's current signing state); 0 or none: all."""
    return await list_tasks(session, build_id)


@tasks.post("/", response_model=SignTaskOut, responses=errors(*BODY, 404, 409))
async def create_sign_task(body: SignTaskCreate, actor: People, rpc: RpcDep) -> SignTaskOut:
    """The build's owner or an administrator; the build must have finished with source and
    binary RPMs, not be signed, and have no sign task waiting or in progress."""
    return _answered(await rpc.call(CREATE_SIGN_TASK, CreateSignTask(actor=actor, request=body)))


@tasks.post(
    "/get_sign_task/", response_model=AvailableSignTask | dict[str, Any], responses=errors(*BODY)
)
async def get_sign_task(
    body: GetSignTaskRequest, node: SignNode, rpc: RpcDep
) -> AvailableSignTask | dict[str, Any]:
    """The oldest waiting task signed with one of the offered keys, or `{}`."""
    claimed = await rpc.call(GET_SIGN_TASK, ClaimSignTask(actor=node, key_ids=body.key_ids))
    return claimed.task if claimed is not None and claimed.task is not None else {}


@tasks.post(
    "/{sign_task_id}/complete/", response_model=CompleteReply, responses=errors(*BODY, 404, 409)
)
async def complete_sign_task(
    sign_task_id: SignTaskId, body: SignTaskComplete, node: SignNode, rpc: RpcDep
) -> CompleteReply:
    """Only the node holding the task; the same report again answers alike, another one 409."""
    command = CompleteSignTask(actor=node, task_id=sign_task_id, report=body)
    return _answered(await rpc.call(COMPLETE_SIGN_TASK, command))


@tasks.post("/{sign_task_id}/cancel/", response_model=SignTaskOut, responses=errors(404, 409))
async def cancel_sign_task(sign_task_id: SignTaskId, actor: People, rpc: RpcDep) -> SignTaskOut:
    """The build's owner or an administrator: a waiting or claimed task fails with a message
    naming who canceled it, and the build may be signed again. A finished task (or one whose
    signed files are being put in place) is a 409; the holder's late success report too."""
    command = CancelSignTask(actor=actor, task_id=sign_task_id)
    return _answered(await rpc.call(CANCEL_SIGN_TASK, command))
