"""RPC subscribers for platform commands."""

from faststream.rabbit import RabbitRouter

from scheduler import platforms
from shared.contracts.messages import RpcReply
from shared.contracts.platforms import (
    CREATE_PLATFORM,
    MODIFY_PLATFORM,
    CreatePlatform,
    ModifyPlatform,
)
from shared.contracts.topology import Topology
from shared.db.session import SessionFactory, in_transaction
from shared.messaging.rpc_server import reply


def platform_handlers(topology: Topology, sessions: SessionFactory) -> RabbitRouter:
    router = RabbitRouter()

    @router.subscriber(topology.rpc_queue(CREATE_PLATFORM))
    async def on_create_platform(command: CreatePlatform) -> RpcReply:
        return await reply(
            in_transaction(sessions, platforms.create_platform, command.actor, command.platform)
        )

    @router.subscriber(topology.rpc_queue(MODIFY_PLATFORM))
    async def on_modify_platform(command: ModifyPlatform) -> RpcReply:
        return await reply(
            in_transaction(sessions, platforms.modify_platform, command.actor, command.platform)
        )

    return router
