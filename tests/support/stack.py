"""The services in-process, on the real servers: fast integration tests of whole flows."""

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from faststream import FastStream
from pydantic_settings import BaseSettings

from api_gateway.main import create_app as create_gateway
from api_gateway.settings import GatewaySettings
from auth.settings import AuthSettings
from auth.users import ensure_user, token_for
from scheduler.main import create_app as create_scheduler
from scheduler.settings import SchedulerSettings
from shared.db.models import UserKind
from shared.db.session import SessionFactory, in_transaction

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
