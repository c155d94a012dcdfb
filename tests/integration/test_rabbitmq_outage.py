"""RabbitMQ stops for ~10 s in the middle of a burst of build_done reports (issue 10).

Afterwards: every report that got a 2xx is in PostgreSQL, every report that got a 503
succeeds when sent again and has one effect only (one `build_task.finished` per task in
the artifacts queue, attempt 1), and the gateway and the scheduler reconnected by
themselves (a node's get_task and ping work again).

It stops the shared RabbitMQ node's application, so every other run on this machine sees
the outage too; `start_app` runs in a `finally` whatever happens. Marked `exclusive`:
scripts/test runs it after the parallel part of the suite, with no other test beside it.
"""

import asyncio
import json
import shutil
import subprocess
from collections import Counter

import aio_pika
import httpx
import pytest
from faststream import FastStream
from sqlalchemy import select

from shared.contracts.build_node import BuildTaskFinished
from shared.contracts.topology import Topology
from shared.db.models import BuildTask, UserKind
from shared.db.session import SessionFactory
from tests.support.builds import create_platform, get_task, mark_ready, platform_body
from tests.support.events import EventBus
from tests.support.servers import Servers
from tests.support.stack import TokenMaker, bearer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.usefixtures("clean_db"), pytest.mark.exclusive]
NODE = "/api/v1/build_node"
TASKS = 24
REPORT_EVERY = 0.6  # the burst spans ~15 s: before, during and after the outage
OUTAGE_AFTER = 2.0
OUTAGE_SECONDS = 10.0
CALL_LIMIT = 30.0  # no single HTTP call may take longer than this


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


async def outage() -> None:
    await asyncio.sleep(OUTAGE_AFTER)
    try:
        await asyncio.to_thread(rabbitmqctl, "stop_app")
        await asyncio.sleep(OUTAGE_SECONDS)
    finally:
        await asyncio.to_thread(rabbitmqctl, "start_app")
        await asyncio.to_thread(rabbitmqctl, "await_startup")


@pytest.fixture
async def started_tasks(
    api: httpx.AsyncClient,
    make_token: TokenMaker,
    event_bus: EventBus,
    sessions: SessionFactory,
) -> tuple[dict[str, str], list[int]]:
    """TASKS tasks handed out to one node (one single-task build each, so all are runnable)."""
    admin = bearer(await make_token("root", admin=True))
    node = {**bearer(await make_token("node", kind=UserKind.NODE)), "X-Node-Id": "n1"}
    await create_platform(api, admin, platform_body("P", ["x86_64"]))
    for n in range(TASKS):
        body = {
            "platforms": [{"name": "P", "arch_list": ["x86_64"]}],
            "tasks": [{"url": f"https://git.example.org/r{n}.git"}],
        }
        build = (await api.post("/api/v1/builds/", json=body, headers=admin)).json()
        await mark_ready(event_bus, sessions, build["id"])
    tasks = []
    for _ in range(TASKS):
        task = await get_task(api, node, ["x86_64"])
        assert task is not None
        tasks.append(task["id"])
    return node, tasks


async def report(api: httpx.AsyncClient, node: dict[str, str], task_id: int) -> int:
    body = {"task_id": task_id, "status": "done", "artifacts": []}
    try:
        answer = await asyncio.wait_for(
            api.post(f"{NODE}/build_done", json=body, headers=node), CALL_LIMIT
        )
    except TimeoutError:
        return 0
    return answer.status_code


async def finished_events(servers: Servers, prefix: str) -> list[dict[str, object]]:
    """What waits for the artifacts service (not running here) in its durable queue."""
    name = Topology(prefix).event_queue("artifacts", BuildTaskFinished).name
    connection = await aio_pika.connect(servers.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(name)
        found = []
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            found.append(json.loads(message.body))
        return found


async def test_reports_during_a_rabbitmq_stop_are_kept_or_refused_and_then_accepted_once(
    api: httpx.AsyncClient,
    scheduler: FastStream,
    sessions: SessionFactory,
    servers: Servers,
    amqp_prefix: str,
    started_tasks: tuple[dict[str, str], list[int]],
) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("this fault test needs rabbitmqctl on the RabbitMQ host", pytrace=False)
    node, tasks = started_tasks
    await finished_events(servers, amqp_prefix)  # nothing from earlier tests
    stopping = asyncio.create_task(outage())
    statuses: dict[int, int] = {}
    try:
        for task_id in tasks:
            statuses[task_id] = await report(api, node, task_id)
            await asyncio.sleep(REPORT_EVERY)
    finally:
        await stopping
    assert set(statuses.values()) <= {0, 200, 503}, statuses
    assert 503 in statuses.values(), "the outage was not noticed by any report"
    assert 200 in statuses.values()

    async with sessions() as session:
        rows = {
            t.id: t for t in await session.scalars(select(BuildTask).where(BuildTask.id.in_(tasks)))
        }
    for task_id, status in statuses.items():
        if status == 200:
            assert rows[task_id].status == 2, f"task {task_id} was acknowledged but not stored"

    async def reconnected() -> bool:
        ping = await api.post(f"{NODE}/ping", json={"active_tasks": []}, headers=node)
        claim = await api.request(
            "GET", f"{NODE}/get_task", json={"supported_arches": ["x86_64"]}, headers=node
        )
        return ping.status_code == 200 and claim.status_code == 200

    await eventually(reconnected, timeout=90, every=1.0)

    async def counted_again() -> bool:  # the gateway's consumer watch survived the outage
        health = (await api.get("/healthz")).json()
        return bool(health["rpc_consumers"]["build_node.get_task"])

    await eventually(counted_again, timeout=30, every=0.5)
    for task_id, status in statuses.items():
        if status != 200:
            assert await report(api, node, task_id) == 200  # the same report again: accepted

    async with sessions() as session:
        rows = {
            t.id: t for t in await session.scalars(select(BuildTask).where(BuildTask.id.in_(tasks)))
        }
    assert {(t.status, t.attempt) for t in rows.values()} == {(2, 1)}

    seen: Counter[int] = Counter()

    async def one_event_per_task() -> bool:
        seen.update(int(str(e["task_id"])) for e in await finished_events(servers, amqp_prefix))
        return set(seen) >= set(tasks)

    await eventually(one_event_per_task, timeout=60, every=1.0)
    await asyncio.sleep(2)  # a duplicate would come now
    seen.update(int(str(e["task_id"])) for e in await finished_events(servers, amqp_prefix))
    assert {t: seen[t] for t in tasks} == dict.fromkeys(tasks, 1)
