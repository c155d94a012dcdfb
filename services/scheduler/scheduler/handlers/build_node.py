"""Build node traffic: build_done (RPC) and pings (events from the gateway).

get_task, the hottest message, has a consumer of its own (scheduler/get_task_rpc.py)."""

from faststream.rabbit import RabbitRouter

from scheduler import leases, results
from scheduler.settings import SchedulerSettings
from shared.contracts.build_node import (
    BUILD_DONE,
    NodePinged,
    ReportBuildDone,
)
from shared.contracts.messages import RpcReply
from shared.contracts.topology import Topology
from shared.db.session import SessionFactory, in_transaction
from shared.messaging.rpc_server import reply
from shared.messaging.subscribers import event_subscriber

CONSUMER = "scheduler"


def build_node_handlers(
    topology: Topology,
    sessions: SessionFactory,
    settings: SchedulerSettings,
) -> RabbitRouter:
    router = RabbitRouter()

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
