"""The services in-process, on the real servers: fast integration tests of whole flows."""

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import aio_pika
import httpx
import pytest
from fastapi import FastAPI
from faststream import FastStream
from pydantic_settings import BaseSettings

from api_gateway.main import create_app as create_gateway
from api_gateway.settings import GatewaySettings
from auth.main import create_app as create_auth
from auth.settings import AuthSettings
from auth.users import ensure_user, token_for
from scheduler.main import create_app as create_scheduler
from scheduler.settings import SchedulerSettings
from shared.contracts.build_node import GET_TASK
from shared.contracts.topology import Topology
from shared.db.models import UserKind
from shared.db.session import SessionFactory, in_transaction
from tests.support.fake_github import FakeGithub
from tests.support.fixtures import delete_queues
from tests.support.servers import Servers

S = TypeVar("S", bound=BaseSettings)
TokenMaker = Callable[..., Coroutine[Any, Any, str]]


def settings_for(cls: type[S], env: dict[str, str], **overrides: Any) -> S:
    values: dict[str, Any] = {k.removeprefix("ALBS_").lower(): v for k, v in env.items()}
    values.update(overrides)
    return cls(**values)


@pytest.fixture(scope="session")
async def scheduler(service_env: dict[str, str]) -> AsyncIterator[FastStream]:
    app = create_scheduler(settings_for(SchedulerSettings, service_env))
    await app.start()
    yield app
    await app.stop()


@pytest.fixture(scope="session")
def fake_github() -> Iterator[FakeGithub]:
    server = FakeGithub()
    server.start()
    yield server
    server.stop()


def auth_settings_for(env: dict[str, str], github: FakeGithub, **overrides: Any) -> AuthSettings:
    """The auth service's settings, logging in through the fake GitHub."""
    github_settings: dict[str, Any] = {
        "github_client_id": github.client_id,
        "github_client_secret": github.client_secret,
        "github_web_url": github.web_url,
        "github_api_url": github.api_url,
        "github_timeout_seconds": 2,
    }
    return settings_for(AuthSettings, env, **{**github_settings, **overrides})


@pytest.fixture(scope="session")
async def auth_service(
    service_env: dict[str, str], fake_github: FakeGithub
) -> AsyncIterator[FastStream]:
    """The auth service in-process, answering login, admin and revocation RPCs."""
    app = create_auth(auth_settings_for(service_env, fake_github))
    await app.start()
    yield app
    await app.stop()


@pytest.fixture(scope="session")
async def gateway(service_env: dict[str, str]) -> AsyncIterator[FastAPI]:
    app = create_gateway(settings_for(GatewaySettings, service_env, rpc_timeout_seconds=5))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(gateway: FastAPI, scheduler: FastStream) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the in-process gateway, with the scheduler answering its RPCs."""
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


@pytest.fixture
def make_token(service_env: dict[str, str], sessions: SessionFactory) -> TokenMaker:
    settings = settings_for(AuthSettings, service_env)

    async def make(name: str, *, admin: bool = False, kind: UserKind = UserKind.USER) -> str:
        user = await in_transaction(
            sessions, ensure_user, name, email=f"{name}@example.org", kind=kind, admin=admin
        )
        return token_for(user, settings)

    return make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def lonely_gateway(
    servers: Servers, service_env: dict[str, str], **settings: Any
) -> AsyncIterator[tuple[FastAPI, str]]:
    """A gateway on the test database whose RPC queues nobody consumes (a prefix of its
    own), its get_task queue declared as stopped scheduler replicas leave it."""
    prefix = f"lonely-{secrets.token_hex(3)}"
    connection = await aio_pika.connect(servers.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(Topology(prefix).rpc_queue(GET_TASK).name, durable=True)
    app = create_gateway(settings_for(GatewaySettings, service_env, amqp_prefix=prefix, **settings))
    try:
        async with app.router.lifespan_context(app):
            yield app, prefix
    finally:
        await delete_queues(servers.amqp_url, prefix)
