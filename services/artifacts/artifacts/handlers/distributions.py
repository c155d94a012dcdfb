"""RPC subscribers for distribution commands, and the event that brings restarted tasks in."""

from faststream.rabbit import RabbitMessage, RabbitRouter

from artifacts import distributions
from artifacts.context import Context
from shared.contracts.build_node import BuildTaskArtifactsStored
from shared.contracts.distributions import (
    ADD_TO_DISTRIBUTION,
    CREATE_DISTRIBUTION,
    REMOVE_FROM_DISTRIBUTION,
    ChangeDistribution,
    CreateDistribution,
)
from shared.contracts.messages import RpcReply
from shared.contracts.topology import Topology
from shared.messaging.rpc_server import reply
from shared.messaging.subscribers import event_subscriber


def distribution_handlers(topology: Topology, context: Context) -> RabbitRouter:
    router = RabbitRouter()

    @router.subscriber(topology.rpc_queue(CREATE_DISTRIBUTION))
    async def on_create_distribution(command: CreateDistribution) -> RpcReply:
        return await reply(distributions.create_distribution(context, command))

    @router.subscriber(topology.rpc_queue(ADD_TO_DISTRIBUTION))
    async def on_add_to_distribution(command: ChangeDistribution) -> RpcReply:
        return await reply(distributions.add_build(context, command))

    @router.subscriber(topology.rpc_queue(REMOVE_FROM_DISTRIBUTION))
    async def on_remove_from_distribution(command: ChangeDistribution) -> RpcReply:
        return await reply(distributions.remove_build(context, command))

    @event_subscriber(router, topology, context.consumer, BuildTaskArtifactsStored)
    async def on_artifacts_stored(event: BuildTaskArtifactsStored, message: RabbitMessage) -> None:
        await distributions.add_restarted_task(context, message.message_id, event)

    return router
