"""/api/v1/build_node: what albs-node calls (CLIENTS.md §2)."""

from fastapi import APIRouter, Request, Response

from api_gateway.deps import RpcDep
from api_gateway.idle_poll import next_task
from api_gateway.policy import BuildNode
from api_gateway.responses import BODY, COMMON, errors
from shared.contracts.build_node import (
    BUILD_DONE,
    BuildDone,
    BuildDoneReply,
    GetTask,
    GetTaskRequest,
    NodePinged,
    PingRequest,
    ReportBuildDone,
    Task,
)
from shared.db.queries.build_tasks import held_by_other_nodes
from shared.errors import Conflict

router = APIRouter(
    prefix="/api/v1/build_node", tags=["build node"], responses=errors(*COMMON, *BODY)
)


# albs-node sends a GET with a JSON body; POST is accepted for clients and proxies that drop it.
@router.get("/get_task", response_model=Task | None, operation_id="get_task")
@router.post("/get_task", response_model=Task | None, operation_id="get_task_post")
async def get_task(
    body: GetTaskRequest, node: BuildNode, rpc: RpcDep, request: Request
) -> Response:
    """The scheduler's stored Task body, sent on as it comes: a node's hottest call."""
    wanted = GetTask(actor=node, supported_arches=body.supported_arches)
    task = await next_task(request.app.state.runnable, rpc, wanted)
    return Response(task, media_type="application/json")


@router.post("/ping", response_model=None, responses=errors(409))
async def ping(body: PingRequest, node: BuildNode, rpc: RpcDep, request: Request) -> None:
    """Extends the leases of this node's tasks; tasks another node holds are refused (409)
    after this node's own leases were extended."""
    if not body.active_tasks:
        return
    async with request.app.state.sessions() as session:
        foreign = await held_by_other_nodes(session, body.active_tasks, node.node_id or "")
    await rpc.publish_event(NodePinged(active_tasks=body.active_tasks, node_id=node.node_id))
    if foreign:
        raise Conflict(f"Build tasks {foreign} are held by another node, not {node.node_id}")


@router.post("/build_done", response_model=BuildDoneReply, responses=errors(404, 409))
async def build_done(body: BuildDone, node: BuildNode, rpc: RpcDep) -> BuildDoneReply | None:
    return await rpc.call(BUILD_DONE, ReportBuildDone(actor=node, report=body))
