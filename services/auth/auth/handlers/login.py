"""RPC subscriber for GitHub login."""

from faststream.rabbit import RabbitRouter

from auth.github import GithubClient
from auth.login import login_with_github
from auth.settings import AuthSettings
from shared.contracts.messages import RpcReply
from shared.contracts.topology import Topology
from shared.contracts.users import LOGIN_GITHUB, GithubLogin
from shared.db.session import SessionFactory
from shared.messaging.rpc_server import reply


def login_handlers(
    topology: Topology,
    sessions: SessionFactory,
    settings: AuthSettings,
    github: GithubClient | None,
) -> RabbitRouter:
    router = RabbitRouter()

    @router.subscriber(topology.rpc_queue(LOGIN_GITHUB))
    async def on_login_github(request: GithubLogin) -> RpcReply:
        return await reply(login_with_github(github, sessions, settings, request.code))

    return router
