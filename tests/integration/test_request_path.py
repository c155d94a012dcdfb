"""The request path under faults: fail fast without consumers, bounded connections, services
that wait for PostgreSQL before consuming, node identity from the token."""

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from scheduler.main import create_app as create_scheduler
from scheduler.settings import SchedulerSettings
from shared.contracts.build_node import GET_TASK
from shared.contracts.topology import Topology
from shared.db import migrate
from shared.db.models import UserKind
from shared.db.session import SessionFactory
from tests.support import stack
from tests.support.builds import create_platform, get_task, mark_ready, platform_body, submit_build
from tests.support.events import EventBus
from tests.support.fixtures import delete_queues
from tests.support.servers import Servers
from tests.support.stack import TokenMaker, bearer, settings_for
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("clean_db")

NODE = "/api/v1/build_node"
POOL, OVERFLOW = 3, 2


@pytest.fixture
async def lonely_gateway(
    servers: Servers, service_env: dict[str, str]
) -> AsyncIterator[tuple[FastAPI, str]]:
    async with stack.lonely_gateway(
        servers, service_env, rpc_timeout_seconds=10, db_pool_size=POOL, db_max_overflow=OVERFLOW
    ) as running:
        yield running


async def gateway_connections(sessions: SessionFactory) -> int:
    async with sessions() as session:
        count = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'albs-gateway'"
            )
        )
    return int(count or 0)


async def test_without_schedulers_commands_fail_fast_and_reads_go_on(
    lonely_gateway: tuple[FastAPI, str], make_token: TokenMaker, sessions: SessionFactory
) -> None:
    app, _ = lonely_gateway
    node = bearer(await make_token("n1", kind=UserKind.NODE))
    user = bearer(await make_token("jdoe"))
    peak = 0
    done = asyncio.Event()

    async def watch_connections() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, await gateway_connections(sessions))
            await asyncio.sleep(0.02)

    # The whole answer must come within 2 s: the RPC timeout of this gateway is 10 s.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=2) as api:
        watcher = asyncio.create_task(watch_connections())
        report = {"task_id": 1, "status": "done", "artifacts": []}
        commands = [api.post(f"{NODE}/build_done", json=report, headers=node) for _ in range(100)]
        reads = [
            api.get("/api/v1/builds/", params={"pageNumber": 1}, headers=user) for _ in range(20)
        ]
        # An idle poll is a read too (nothing is runnable): the gateway answers it alone.
        polls = [
            api.request(
                "GET", f"{NODE}/get_task", json={"supported_arches": ["x86_64"]}, headers=node
            )
            for _ in range(20)
        ]
        answers = await asyncio.gather(*commands, *reads, *polls)
        done.set()
        await watcher
        health = (await api.get("/healthz")).json()

    assert [a.status_code for a in answers[:100]] == [503] * 100
    assert "build_node.build_done" in answers[0].json()["detail"]
    assert [a.status_code for a in answers[100:120]] == [200] * 20
    assert [(a.status_code, a.json()) for a in answers[120:]] == [(200, None)] * 20
    # The session gateway of this test run counts too; each stays within its own pool.
    assert peak <= 2 * (POOL + OVERFLOW)
    assert health["status"] == "degraded"
    assert health["rpc_consumers"]["build_node.get_task"] == 0


async def test_a_scheduler_waits_for_its_database_before_consuming(
    servers: Servers, service_env: dict[str, str]
) -> None:
    """Its database does not exist yet: the replica waits (no consumer, no crash), then
    consumes once the database is there."""
    prefix = f"late-db-{secrets.token_hex(3)}"
    url = make_url(service_env["ALBS_DATABASE_URL"]).set(
        database=f"albs_late_{secrets.token_hex(3)}"
    )
    database_url = url.render_as_string(hide_password=False)
    settings = settings_for(
        SchedulerSettings, service_env, amqp_prefix=prefix, database_url=database_url
    )
    app = create_scheduler(settings)
    starting = asyncio.create_task(app.start())
    try:
        await asyncio.sleep(2)
        assert not starting.done()
        assert await consumers(servers.amqp_url, Topology(prefix)) == 0
        await migrate.create_database(database_url)
        await asyncio.to_thread(migrate.upgrade, database_url)
        await asyncio.wait_for(starting, timeout=30)
        assert await consumers(servers.amqp_url, Topology(prefix)) == 1
    finally:
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        await app.stop()
        await migrate.drop_database(database_url)
        await delete_queues(servers.amqp_url, prefix)


async def consumers(amqp_url: str, topology: Topology) -> int:
    """Consumers of the get_task queue; 0 when it does not even exist."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue(topology.rpc_queue(GET_TASK).name, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return 0
        result = queue.declaration_result
        return int(result.consumer_count or 0) if result else 0


@pytest.fixture
async def nodes(api: httpx.AsyncClient, make_token: TokenMaker) -> dict[str, dict[str, str]]:
    admin = bearer(await make_token("root", admin=True))
    await create_platform(api, admin, platform_body("P", ["x86_64"]))
    return {
        "user": bearer(await make_token("jdoe")),
        "a": bearer(await make_token("node-a", kind=UserKind.NODE)),
        "b": bearer(await make_token("node-b", kind=UserKind.NODE)),
    }


async def started_task(
    api: httpx.AsyncClient,
    nodes: dict[str, dict[str, str]],
    bus: EventBus,
    sessions: SessionFactory,
) -> dict[str, Any]:
    body = {
        "platforms": [{"name": "P", "arch_list": ["x86_64"]}],
        "tasks": [{"url": "https://x/a.git"}],
    }
    build = await submit_build(api, nodes["user"], body)
    await mark_ready(bus, sessions, build["id"])
    task = await get_task(api, nodes["a"], ["x86_64"])
    assert task is not None
    return task


async def test_a_node_cannot_act_for_another_by_naming_it(
    api: httpx.AsyncClient,
    nodes: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
) -> None:
    task = await started_task(api, nodes, event_bus, sessions)
    forged = {**nodes["b"], "X-Node-Id": "node-a"}  # node B's token, node A's name

    ping = await api.post(f"{NODE}/ping", json={"active_tasks": [task["id"]]}, headers=forged)
    assert ping.status_code == 409
    assert "node-b/node-a" in ping.json()["detail"]
    report = {"task_id": task["id"], "status": "failed", "artifacts": []}
    refused = await api.post(f"{NODE}/build_done", json=report, headers=forged)
    assert refused.status_code == 409
    assert "another node" in refused.json()["detail"]

    mine = await api.post(f"{NODE}/ping", json={"active_tasks": [task["id"]]}, headers=nodes["a"])
    assert mine.status_code == 200
    done = {"task_id": task["id"], "status": "done", "artifacts": []}
    assert (await api.post(f"{NODE}/build_done", json=done, headers=nodes["a"])).status_code == 200


async def test_a_former_holder_cannot_report_after_another_node_finished(
    api: httpx.AsyncClient,
    nodes: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
) -> None:
    task = await started_task(api, nodes, event_bus, sessions)
    async with sessions() as session, session.begin():  # node A's lease ran out: B takes it
        await session.execute(
            text("UPDATE build_tasks SET status = 0, lease_expires_at = NULL WHERE id = :id"),
            {"id": task["id"]},
        )
    again = await get_task(api, nodes["b"], ["x86_64"])
    assert again is not None
    assert again["id"] == task["id"]
    done = {"task_id": task["id"], "status": "done", "artifacts": []}
    assert (await api.post(f"{NODE}/build_done", json=done, headers=nodes["b"])).status_code == 200

    late = await api.post(f"{NODE}/build_done", json=done, headers=nodes["a"])
    assert late.status_code == 409
    assert "another node" in late.json()["detail"]
    repeat = await api.post(f"{NODE}/build_done", json=done, headers=nodes["b"])
    assert repeat.status_code == 200


async def test_revocation_reaches_every_gateway_within_moments(
    lonely_gateway: tuple[FastAPI, str],
    api: httpx.AsyncClient,
    make_token: TokenMaker,
    sessions: SessionFactory,
) -> None:
    """Two gateway processes' worth of caches: a change in PostgreSQL evicts both."""
    app, _ = lonely_gateway
    token = bearer(await make_token("dave"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as other:
        for client in (api, other):
            assert (await client.get("/api/v1/platforms/", headers=token)).status_code == 200
        async with sessions() as session, session.begin():
            await session.execute(
                text("UPDATE users SET token_version = token_version + 1 WHERE username = 'dave'")
            )
        for client in (api, other):

            async def refused(c: httpx.AsyncClient = client) -> bool:
                return (await c.get("/api/v1/platforms/", headers=token)).status_code == 403

            await eventually(refused, timeout=5)
