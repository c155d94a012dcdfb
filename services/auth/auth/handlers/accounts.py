"""RPC subscribers for administrator rights and token revocation."""

from faststream.rabbit import RabbitRouter

from auth import users
from shared.contracts.messages import RpcReply
from shared.contracts.topology import Topology
from shared.contracts.users import REVOKE_TOKENS, SET_ADMIN, RevokeTokens, SetAdmin
from shared.db.session import SessionFactory, in_transaction
from shared.messaging.rpc_server import reply


def account_handlers(topology: Topology, sessions: SessionFactory) -> RabbitRouter:
    router = RabbitRouter()

    @router.subscriber(topology.rpc_queue(SET_ADMIN))
    async def on_set_admin(command: SetAdmin) -> RpcReply:
        return await reply(
            in_transaction(
                sessions, users.set_admin, command.actor, command.user_id, command.is_admin
            )
        )

    @router.subscriber(topology.rpc_queue(REVOKE_TOKENS))
    async def on_revoke_tokens(command: RevokeTokens) -> RpcReply:
        return await reply(
            in_transaction(sessions, users.revoke_tokens, command.actor, command.user_id)
        )

    return router
