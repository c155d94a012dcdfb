"""A service's /healthz says ready only when it is, and /metrics always answers.

The runtime's health check against the real servers: not ready before its subscribers
started, nor when PostgreSQL or RabbitMQ is out of reach; ready once all holds.
"""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from auth.settings import AuthSettings
from shared.messaging.runtime import ServiceRuntime, create_runtime, health
from shared.ops_server import OpsServer
from tests.support.stack import settings_for

NOWHERE_DB = "postgresql+asyncpg://postgres@127.0.0.1:1/albs"


@pytest.fixture
async def runtime(service_env: dict[str, str]) -> AsyncIterator[ServiceRuntime]:
    runtime = create_runtime("probe", settings_for(AuthSettings, service_env), pool_size=1)
    yield runtime
    await runtime.broker.stop()
    await runtime.engine.dispose()


async def serve(runtime: ServiceRuntime) -> OpsServer:
    server = OpsServer("127.0.0.1", 0, lambda: health(runtime))
    await server.start()
    return server


async def get(server: OpsServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        return await client.get(path, timeout=10)


async def test_ready_only_once_started_and_connected(runtime: ServiceRuntime) -> None:
    server = await serve(runtime)
    try:
        before = await get(server, "/healthz")
        assert before.status_code == 503
        assert before.json()["status"] == "not ready"
        assert before.json()["subscribers"] == "not started"

        await runtime.broker.connect()
        runtime.started = True
        ready = await get(server, "/healthz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "status": "ready",
            "subscribers": "started",
            "rabbitmq": "ok",
            "postgresql": "ok",
        }

        await runtime.broker.stop()
        after = await get(server, "/healthz")
        assert (after.status_code, after.json()["rabbitmq"]) == (503, "unreachable")
    finally:
        await server.stop()


async def test_not_ready_while_the_database_is_out_of_reach(service_env: dict[str, str]) -> None:
    settings = settings_for(AuthSettings, service_env, database_url=NOWHERE_DB)
    runtime = create_runtime("probe", settings, pool_size=1)
    server = await serve(runtime)
    try:
        await runtime.broker.connect()
        runtime.started = True
        answer = await get(server, "/healthz")
        assert answer.status_code == 503
        assert answer.json()["rabbitmq"] == "ok"
        assert answer.json()["postgresql"].startswith("error")
    finally:
        await server.stop()
        await runtime.broker.stop()
        await runtime.engine.dispose()


async def test_metrics_answer_and_anything_else_does_not(runtime: ServiceRuntime) -> None:
    server = await serve(runtime)
    try:
        metrics = await get(server, "/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "# TYPE albs_messages_handled_total counter" in metrics.text
        assert (await get(server, "/admin")).status_code == 404
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            head = await client.head("/metrics", timeout=10)
        assert (head.status_code, head.content) == (200, b"")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\n" + b"X-Junk: " + b"x" * 10_000 + b"\r\n\r\n")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 400")
    finally:
        await server.stop()
