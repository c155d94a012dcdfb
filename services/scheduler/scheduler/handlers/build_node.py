"""Build node traffic: get_task and build_done (RPC), pings (events from the gateway)."""

from faststream.rabbit import RabbitRouter

from scheduler import assignment, leases, results
from scheduler.settings import SchedulerSettings
from shared.contracts.build_node import (
    BUILD_DONE,
    GET_TASK,
    GetTask,
    NodePinged,
    ReportBuildDone,
)
from shared.contracts.messages import RpcReply
from shared.contracts.topology import Topology
from shared.db.session import SessionFactory, in_transaction
from shared.messaging.rpc_server import reply, reply_json
from shared.messaging.subscribers import event_subscriber

CONSUMER = "scheduler"


def build_node_handlers(
    topology: Topology,
    sessions: SessionFactory,
    claims: assignment.ClaimPool,
    settings: SchedulerSettings,
) -> RabbitRouter:
    router = RabbitRouter()

    @router.subscriber(topology.rpc_queue(GET_TASK))
    async def on_get_task(command: GetTask) -> RpcReply | bytes:
        claim = assignment.Claim(
            arches=command.supported_arches,
            node_id=command.actor.node_id,
            lease_seconds=settings.lease_seconds,
        )
        return await reply_json(assignment.assign_next_task(claims, sessions, claim))

    @router.subscriber(topology.rpc_queue(BUILD_DONE))
    async def on_build_done(command: ReportBuildDone) -> RpcReply:
        return await reply(
            in_transaction(sessions, results.record_build_done, command.actor, command.report)
        )

    @event_subscriber(router, topology, CONSUMER, NodePinged)
    async def on_node_pinged(event: NodePinged) -> None:
        await in_transaction(
            sessions,
            leases.extend_leases,
            event.active_tasks,
            event.node_id,
            settings.lease_seconds,
        )

    return router
