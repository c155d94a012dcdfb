"""RPC subscribers for build commands."""

from faststream.rabbit import RabbitRouter

from scheduler import idempotency, removal, restart
from shared.contracts.builds import (
    CREATE_BUILD,
    DELETE_BUILD,
    RESTART_FAILED,
    BuildCommand,
    CreateBuild,
)
from shared.contracts.messages import RpcReply
from shared.contracts.topology import Topology
from shared.db.session import SessionFactory, in_transaction
from shared.messaging.rpc_server import reply


def build_handlers(topology: Topology, sessions: SessionFactory) -> RabbitRouter:
    router = RabbitRouter()

    @router.subscriber(topology.rpc_queue(CREATE_BUILD))
    async def on_create_build(command: CreateBuild) -> RpcReply:
        return await reply(
            in_transaction(
                sessions,
                idempotency.create_build_once,
                command.actor,
                command.build,
                command.idempotency_key,
            )
        )

    @router.subscriber(topology.rpc_queue(RESTART_FAILED))
    async def on_restart_failed(command: BuildCommand) -> RpcReply:
        return await reply(
            in_transaction(sessions, restart.restart_failed, command.actor, command.build_id)
        )

    @router.subscriber(topology.rpc_queue(DELETE_BUILD))
    async def on_delete_build(command: BuildCommand) -> RpcReply:
        return await reply(
            in_transaction(sessions, removal.delete_build, command.actor, command.build_id)
        )

    return router
