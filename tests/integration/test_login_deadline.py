"""The whole GitHub login ends within its deadline, below the gateway's RPC timeout, so a
slow GitHub gets the person auth's clear 503 rather than the gateway's timeout."""

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from api_gateway.main import create_app as create_gateway
from api_gateway.settings import GatewaySettings
from auth.main import create_app as create_auth
from shared.db.models import User
from shared.db.session import SessionFactory
from tests.support.fake_github import FakeGithub
from tests.support.stack import auth_settings_for, settings_for

pytestmark = pytest.mark.usefixtures("clean_db")
DEADLINE = 1.5
RPC_TIMEOUT = 5


@pytest.fixture
async def api(
    service_env: dict[str, str], amqp_prefix: str, fake_github: FakeGithub
) -> AsyncIterator[httpx.AsyncClient]:
    """An auth service whose per-call GitHub timeout (2 s) alone would outlast the deadline."""
    prefix = f"{amqp_prefix}-deadline{uuid.uuid4().hex[:4]}"
    fake_github.reset()
    auth = create_auth(
        auth_settings_for(
            service_env, fake_github, amqp_prefix=prefix, login_deadline_seconds=DEADLINE
        )
    )
    gateway = create_gateway(
        settings_for(
            GatewaySettings, service_env, amqp_prefix=prefix, rpc_timeout_seconds=RPC_TIMEOUT
        )
    )
    await auth.start()
    try:
        async with gateway.router.lifespan_context(gateway):
            transport = httpx.ASGITransport(app=gateway)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                yield client
    finally:
        fake_github.reset()
        await auth.stop()


async def test_a_slow_github_ends_the_login_at_its_deadline_with_a_clear_503(
    api: httpx.AsyncClient, fake_github: FakeGithub, sessions: SessionFactory
) -> None:
    code = fake_github.code_for(fake_github.account("jdoe", 1))
    fake_github.hang_next("/user/emails")  # the token and /user answer in time
    started = time.monotonic()
    answer = await api.post(
        "/api/v1/users/login/github",
        json={"code": code},
        headers={"authorization": "Bearer null"},
    )
    took = time.monotonic() - started
    fake_github.release()
    assert answer.status_code == 503, answer.text
    assert f"did not finish within {DEADLINE:g} s" in answer.json()["detail"]
    assert took < RPC_TIMEOUT  # auth answered, not the gateway's timeout
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0
