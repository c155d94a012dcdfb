"""The Build Node protocol against the scheduler: get_task, ping, build_done, leases."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aio_pika
import httpx
import pytest
from faststream import FastStream
from prometheus_client import REGISTRY
from sqlalchemy import update

from shared.contracts.build_node import GET_TASK, BuildTaskArtifactsStored
from shared.contracts.messages import RpcReply
from shared.contracts.topology import Topology
from shared.db.base import utcnow
from shared.db.models import Build, BuildTask, Repository, UserKind, build_repo
from shared.db.session import SessionFactory, unit_of_work
from tests.support import stack
from tests.support.builds import create_platform, get_task, mark_ready, platform_body, submit_build
from tests.support.events import EventBus, EventTap
from tests.support.servers import Servers
from tests.support.stack import TokenMaker, bearer
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("clean_db")
NODE = "/api/v1/build_node"
PLATFORM_REPOS = [
    {
        "name": "baseos",
        "arch": "x86_64",
        "url": "https://m.example.org/baseos/x86_64/",
        "type": "rpm",
    },
    {"name": "baseos", "arch": "i686", "url": "https://m.example.org/baseos/i686/", "type": "rpm"},
]


@pytest.fixture
async def actors(api: httpx.AsyncClient, make_token: TokenMaker) -> dict[str, dict[str, str]]:
    admin = bearer(await make_token("root", admin=True))
    await create_platform(api, admin, platform_body("P", ["x86_64", "i686"], PLATFORM_REPOS))
    return {
        "admin": admin,
        "user": bearer(await make_token("jdoe")),
        "node1": bearer(await make_token("node1", kind=UserKind.NODE)),
        "node2": bearer(await make_token("node2", kind=UserKind.NODE)),
    }


def two_refs(**extra: Any) -> dict[str, Any]:
    return {
        "platforms": [{"name": "P", "arch_list": ["x86_64", "i686"]}],
        "tasks": [
            {"url": "https://git.example.org/a.git", "git_ref": "v1"},
            {"url": "https://git.example.org/b.git"},
        ],
        **extra,
    }


async def task_row(sessions: SessionFactory, task_id: int) -> BuildTask:
    async with sessions() as session:
        task = await session.get(BuildTask, task_id)
    assert task is not None
    return task


async def release(bus: EventBus, sessions: SessionFactory, task_id: int) -> None:
    """What the artifacts service announces once it filed a task's artifacts."""
    task = await task_row(sessions, task_id)
    await bus.publish(
        BuildTaskArtifactsStored(task_id=task_id, build_id=task.build_id, attempt=task.attempt)
    )

    async def released() -> bool:
        return (await task_row(sessions, task_id)).artifacts_stored_at is not None

    await eventually(released)


async def done(
    api: httpx.AsyncClient,
    node: dict[str, str],
    task_id: int,
    status: str = "done",
    artifacts: list[dict[str, str]] | None = None,
    **headers: str,
) -> httpx.Response:
    body = {"task_id": task_id, "status": status, "artifacts": artifacts or []}
    return await api.post(f"{NODE}/build_done", json=body, headers={**node, **headers})


async def test_nothing_is_handed_out_before_the_repositories_exist(
    api: httpx.AsyncClient,
    actors: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
) -> None:
    build = await submit_build(api, actors["user"], two_refs())
    assert await get_task(api, actors["node1"], ["x86_64", "i686"]) is None
    await mark_ready(event_bus, sessions, build["id"])
    task = await get_task(api, actors["node1"], ["x86_64", "i686"])
    assert task is not None
    assert task["id"] == build["tasks"][0]["id"]


async def test_task_carries_everything_the_node_needs_in_reference_order(
    api: httpx.AsyncClient,
    actors: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
) -> None:
    linked = await submit_build(api, actors["user"], two_refs())
    build = await submit_build(
        api,
        actors["user"],
        two_refs(
            linked_builds=[linked["id"]],
            mock_options={
                "with": ["docs"],
                "yum_exclude": ["foo*"],
                "definitions": {"dist": ".el8_5"},
            },
        ),
    )
    async with unit_of_work(sessions) as session:
        for owner, name, arch, debug, kind in [
            (build["id"], "P-src-b-br", "src", False, "rpm"),
            (build["id"], "P-x86_64-b-br", "x86_64", False, "rpm"),
            (build["id"], "P-x86_64-b-debug-br", "x86_64", True, "rpm"),
            (build["id"], "P-i686-b-br", "i686", False, "rpm"),
            (build["id"], "P-x86_64-b-artifacts-1", "x86_64", False, "build_log"),
            (linked["id"], "P-x86_64-l-br", "x86_64", False, "rpm"),
        ]:
            repo = Repository(
                name=name, arch=arch, url=f"http://pulp/{name}/", type=kind, debug=debug
            )
            session.add(repo)
            await session.flush()
            await session.execute(build_repo.insert().values(build_id=owner, repository_id=repo.id))
        await session.execute(update(Build).where(Build.id == linked["id"]).values(ready=False))
    await mark_ready(event_bus, sessions, build["id"])

    answer = await api.request(
        "GET", f"{NODE}/get_task", json={"supported_arches": ["x86_64"]}, headers=actors["node1"]
    )
    task = answer.json()
    assert task["id"] == build["tasks"][0]["id"]
    assert task["arch"] == "x86_64"
    assert task["ref"] == {"url": "https://git.example.org/a.git", "git_ref": "v1"}
    assert task["created_by"] == {"name": "jdoe", "email": "jdoe@example.org"}
    assert task["linked_builds"] == [linked["id"]]
    assert [r["name"] for r in task["repositories"]] == [
        "baseos",
        "P-x86_64-b-br",
        "P-x86_64-b-debug-br",
        "P-x86_64-l-br",
    ]
    data = task["platform"]["data"]
    assert task["platform"]["name"] == "P"
    assert task["platform"]["type"] == "rpm"
    assert data["mock"] == {"package_manager": "dnf"}
    assert data["yum"]["exclude"] == "foo*"
    assert data["definitions"] == {"_with_docs": "--with-docs", "dist": ".el8_5"}


async def test_post_works_like_get_and_a_missing_body_is_422(
    api: httpx.AsyncClient, actors: dict[str, dict[str, str]]
) -> None:
    posted = await api.post(
        f"{NODE}/get_task", json={"supported_arches": ["x86_64"]}, headers=actors["node1"]
    )
    assert (posted.status_code, posted.json()) == (200, None)
    assert (await api.get(f"{NODE}/get_task", headers=actors["node1"])).status_code == 422
    assert (
        await api.post(
            f"{NODE}/get_task", json={"supported_arches": "x86_64"}, headers=actors["node1"]
        )
    ).status_code == 422


async def test_dependencies_hold_until_the_artifacts_are_stored(
    api: httpx.AsyncClient,
    actors: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
) -> None:
    build = await submit_build(api, actors["user"], two_refs())
    t1, t2, t3, _t4 = (t["id"] for t in build["tasks"])
    await mark_ready(event_bus, sessions, build["id"])
    assert (await get_task(api, actors["node1"], ["x86_64", "i686"]))["id"] == t1  # type: ignore[index]
    assert await get_task(api, actors["node2"], ["x86_64", "i686"]) is None
    assert (await done(api, actors["node1"], t1)).json() == {"ok": True}
    assert await get_task(api, actors["node2"], ["x86_64", "i686"]) is None  # not stored yet
    await release(event_bus, sessions, t1)
    got = {(await get_task(api, actors["node2"], ["x86_64", "i686"]))["id"] for _ in range(2)}  # type: ignore[index]
    assert got == {t2, t3}
    assert await get_task(api, actors["node2"], ["x86_64", "i686"]) is None  # t4 waits for both


async def test_assignment_records_attempt_lease_and_node(
    api: httpx.AsyncClient,
    actors: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
    event_tap: EventTap,
) -> None:
    build = await submit_build(api, actors["user"], two_refs())
    await mark_ready(event_bus, sessions, build["id"])
    before = utcnow()
    task = await api.request(
        "GET",
        f"{NODE}/get_task",
        json={"supported_arches": ["x86_64"]},
        headers={**actors["node1"], "X-Node-Id": "builder-7"},
    )
    row = await task_row(sessions, task.json()["id"])
    assert (row.status, row.attempt, row.node_id) == (1, 1, "node1/builder-7")
    assert row.lease_expires_at is not None
    assert timedelta(seconds=290) < row.lease_expires_at - before < timedelta(seconds=310)
    assert (await event_tap.settled("build_task.assigned", 1))[-1]["node_id"] == "node1/builder-7"


async def test_ping_extends_leases_of_started_tasks(
    api: httpx.AsyncClient,
    actors: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
) -> None:
    build = await submit_build(api, actors["user"], two_refs())
    await mark_ready(event_bus, sessions, build["id"])
    task = await get_task(api, actors["node1"], ["x86_64"])
    assert task is not None
    soon = utcnow() + timedelta(seconds=5)
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(BuildTask).where(BuildTask.id == task["id"]).values(lease_expires_at=soon)
        )
    idle_task = build["tasks"][1]["id"]
    answer = await api.post(
        f"{NODE}/ping",
        json={"active_tasks": [task["id"], idle_task, 999999]},
        headers=actors["node1"],
    )
    assert (answer.status_code, answer.json()) == (200, None)

    async def extended() -> bool:
        row = await task_row(sessions, task["id"])
        return row.lease_expires_at is not None and row.lease_expires_at > soon + timedelta(
            seconds=200
        )

    await eventually(extended)
    assert (await task_row(sessions, idle_task)).lease_expires_at is None
    assert (
        await api.post(f"{NODE}/ping", json={"active_tasks": []}, headers=actors["node1"])
    ).json() is None


async def test_build_done_is_idempotent_and_contradictions_are_409(
    api: httpx.AsyncClient,
    actors: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
    event_tap: EventTap,
) -> None:
    build = await submit_build(api, actors["user"], two_refs())
    await mark_ready(event_bus, sessions, build["id"])
    task = await get_task(api, actors["node1"], ["x86_64"])
    assert task is not None
    logs = [{"name": "albs.1.log", "type": "build_log", "href": "/pulp/api/v3/artifacts/1/"}]
    for _ in range(2):
        answer = await done(api, actors["node1"], task["id"], "failed", logs)
        assert (answer.status_code, answer.json()) == (200, {"ok": True})
    finished = await event_tap.settled("build_task.finished", 1)
    assert len(finished) == 1
    assert finished[0]["status"] == "failed"
    assert finished[0]["artifacts"] == [
        {"name": "albs.1.log", "type": "build_log", "artifact_href": "/pulp/api/v3/artifacts/1/"}
    ]
    contradiction = await done(api, actors["node1"], task["id"], "done")
    assert contradiction.status_code == 409
    assert "already finished as failed" in contradiction.json()["detail"]
    assert (await done(api, actors["node1"], 999999)).status_code == 404
    never_given = await done(api, actors["node1"], build["tasks"][3]["id"])
    assert never_given.status_code == 409
    assert (await task_row(sessions, task["id"])).status == 3


async def test_bad_build_done_bodies_are_422_and_change_nothing(
    api: httpx.AsyncClient, actors: dict[str, dict[str, str]], event_tap: EventTap
) -> None:
    for bad in (
        {"task_id": "x", "status": "done", "artifacts": []},
        {"task_id": 1, "status": "finished", "artifacts": []},
        {"task_id": 1, "status": "done", "artifacts": [{"name": "a.rpm", "type": "rpm"}]},
        {"status": "done"},
    ):
        assert (
            await api.post(f"{NODE}/build_done", json=bad, headers=actors["node1"])
        ).status_code == 422
    assert (
        await api.post(f"{NODE}/ping", json={"active_tasks": ["a"]}, headers=actors["node1"])
    ).status_code == 422
    assert await event_tap.settled("build_task.finished", 0) == []


async def test_people_cannot_pose_as_nodes(
    api: httpx.AsyncClient, actors: dict[str, dict[str, str]]
) -> None:
    answer = await api.post(
        f"{NODE}/get_task", json={"supported_arches": ["x86_64"]}, headers=actors["user"]
    )
    assert answer.status_code == 403
    assert (
        await api.post("/api/v1/builds/", json=two_refs(), headers=actors["node1"])
    ).status_code == 403


async def test_the_get_task_consumer_answers_a_bad_request_with_an_error_and_counts_it(
    scheduler: FastStream, servers: Servers, amqp_prefix: str
) -> None:
    """get_task has its own consumer (not FastStream's): it still answers, binds the
    correlation id and fills the same metrics as every other handler."""
    labels = {"handler": "rpc.build_node.get_task", "outcome": "error"}
    errors_before = REGISTRY.get_sample_value("albs_messages_handled_total", labels) or 0.0
    queue = Topology(amqp_prefix).rpc_queue(GET_TASK).name
    connection = await aio_pika.connect(servers.amqp_url)
    async with connection:
        channel = await connection.channel()
        replies: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        reply_queue = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
        await reply_queue.consume(replies.put, no_ack=True)
        await channel.default_exchange.publish(
            aio_pika.Message(
                b'{"supported_arches": "x86_64"}',
                correlation_id="call-1",
                reply_to="amq.rabbitmq.reply-to",
                headers={"x-correlation-id": "request-0001"},
            ),
            routing_key=queue,
        )
        answer = await asyncio.wait_for(replies.get(), 10)
    assert answer.correlation_id == "call-1"
    reply = RpcReply.model_validate_json(answer.body)
    assert reply.error is not None
    assert reply.error.status == 500
    errors_after = REGISTRY.get_sample_value("albs_messages_handled_total", labels)
    assert errors_after == errors_before + 1


def get_task_count(method: str, status: str) -> float:
    labels = {"route": f"{NODE}/get_task", "method": method, "status": status}
    return REGISTRY.get_sample_value("albs_http_request_duration_seconds_count", labels) or 0.0


async def test_get_task_fast_path_and_fastapi_answer_alike(
    api: httpx.AsyncClient, actors: dict[str, dict[str, str]]
) -> None:
    """The gateway answers get_task before FastAPI's stack and hands FastAPI every request
    it would refuse (api_gateway/fast_path.py): the answers are FastAPI's either way."""
    body = {"supported_arches": ["x86_64"]}
    token = actors["node1"]["Authorization"].removeprefix("Bearer ")
    before = get_task_count("GET", "200")
    fast = await api.request(
        "GET", f"{NODE}/get_task", json=body, headers={"Authorization": f"bearer {token}"}
    )
    assert (fast.status_code, fast.json()) == (200, None)
    assert fast.headers["content-type"] == "application/json"
    assert fast.headers["x-request-id"]
    assert get_task_count("GET", "200") == before + 1  # same route label as FastAPI's
    refused = {
        "not JSON": {"content": b"supported_arches=x86_64", "headers": actors["node1"]},
        "bad node id": {"json": body, "headers": {**actors["node1"], "X-Node-Id": ""}},
        "a person": {"json": body, "headers": actors["user"]},
        "no token": {"json": body},
        "invalid JSON": {
            "content": b'{"supported_arches": [',
            "headers": {**actors["node1"], "Content-Type": "application/json"},
        },
    }
    statuses = {}
    for name, request in refused.items():
        answer = await api.request("POST", f"{NODE}/get_task", **request)  # type: ignore[arg-type]
        assert "detail" in answer.json(), name
        statuses[name] = answer.status_code
    assert statuses == {
        "not JSON": 422,
        "bad node id": 422,
        "a person": 403,
        "no token": 403,
        "invalid JSON": 422,
    }


@pytest.fixture
async def lonely_gateway(
    service_env: dict[str, str], servers: Servers
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        stack.lonely_gateway(servers, service_env) as (app, _),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        yield client


async def test_an_idle_poll_is_answered_from_a_read_without_the_scheduler(
    api: httpx.AsyncClient,
    lonely_gateway: httpx.AsyncClient,
    actors: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
) -> None:
    """Nothing runnable for the node's arches: null, from the gateway alone
    (api_gateway/idle_poll.py). Something runnable: only the scheduler may hand it out."""

    async def poll(arches: list[str]) -> httpx.Response:
        body = {"supported_arches": arches}
        return await lonely_gateway.request(
            "GET", f"{NODE}/get_task", json=body, headers=actors["node1"]
        )

    build = await submit_build(api, actors["user"], two_refs())
    for arches in (["x86_64", "i686"], ["aarch64"]):  # repositories not ready, another arch
        answer = await poll(arches)
        assert (answer.status_code, answer.json()) == (200, None)
    await mark_ready(event_bus, sessions, build["id"])
    # Ref a's i686 task waits for its x86_64 one: blocked tasks are not runnable.
    for arches in (["i686"], ["aarch64"]):
        answer = await poll(arches)
        assert (answer.status_code, answer.json()) == (200, None)
    refused = await poll(["x86_64"])
    assert refused.status_code == 503, refused.text  # nobody to hand it out on that prefix
    task = await get_task(api, actors["node1"], ["i686", "x86_64"])
    assert task is not None
    assert (task["id"], task["arch"]) == (build["tasks"][0]["id"], "x86_64")
