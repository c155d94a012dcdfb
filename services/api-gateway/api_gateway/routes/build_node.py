"""/api/v1/build_node: what albs-node calls (CLIENTS.md §2)."""

from fastapi import APIRouter

from api_gateway.deps import RpcDep
from api_gateway.policy import BuildNode
from shared.contracts.build_node import (
    BUILD_DONE,
    GET_TASK,
    BuildDone,
    BuildDoneReply,
    GetTask,
    GetTaskRequest,
    NodePinged,
    PingRequest,
    ReportBuildDone,
    Task,
)

router = APIRouter(prefix="/api/v1/build_node", tags=["build node"])


# albs-node sends a GET with a JSON body; POST is accepted for clients and proxies that drop it.
@router.get("/get_task", response_model=Task | None, operation_id="get_task")
@router.post("/get_task", response_model=Task | None, operation_id="get_task_post")
async def get_task(body: GetTaskRequest, node: BuildNode, rpc: RpcDep) -> Task | None:
    return await rpc.call(GET_TASK, GetTask(actor=node, supported_arches=body.supported_arches))


@router.post("/ping", response_model=None)
async def ping(body: PingRequest, node: BuildNode, rpc: RpcDep) -> None:
    if body.active_tasks:
        await rpc.publish_event(NodePinged(active_tasks=body.active_tasks, node_id=node.node_id))


@router.post("/build_done", response_model=BuildDoneReply)
async def build_done(body: BuildDone, node: BuildNode, rpc: RpcDep) -> BuildDoneReply | None:
    return await rpc.call(BUILD_DONE, ReportBuildDone(actor=node, report=body))
