"""GET /api/v1/queue: counts per platform and arch, the oldest wait, the nodes at work."""

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from shared.db.base import utcnow
from shared.db.models import BuildTask, UserKind
from shared.db.session import SessionFactory, unit_of_work
from tests.support.builds import create_platform, get_task, mark_ready, platform_body, submit_build
from tests.support.events import EventBus
from tests.support.stack import TokenMaker, bearer

pytestmark = pytest.mark.usefixtures("clean_db")


def build_body(platform: str, arches: list[str], refs: int) -> dict[str, object]:
    return {
        "platforms": [{"name": platform, "arch_list": arches}],
        "tasks": [{"url": f"https://g.example.org/r{n}.git"} for n in range(refs)],
    }


async def test_the_queue_counts_tasks_and_lists_the_nodes_holding_them(
    api: httpx.AsyncClient, make_token: TokenMaker, event_bus: EventBus, sessions: SessionFactory
) -> None:
    admin = bearer(await make_token("root", admin=True))
    user = bearer(await make_token("someone"))
    node_a = {**bearer(await make_token("node-a", kind=UserKind.NODE)), "X-Node-Id": "b1"}
    node_b = bearer(await make_token("node-b", kind=UserKind.NODE))
    await create_platform(api, admin, platform_body("Q8", ["x86_64", "aarch64"]))
    await create_platform(api, admin, platform_body("Q9", ["x86_64"]))

    empty = await api.get("/api/v1/queue/", headers=admin)
    assert empty.status_code == 200, empty.text
    assert empty.json()["groups"] == []
    assert empty.json()["nodes"] == []
    assert empty.json()["oldest_runnable_wait_seconds"] is None

    # Build 1: two refs, ready; the second ref waits for the first (blocked).
    ready = await submit_build(api, user, build_body("Q8", ["x86_64"], refs=2))
    await mark_ready(event_bus, sessions, ready["id"])
    other = await submit_build(api, user, build_body("Q8", ["aarch64"], refs=1))
    await mark_ready(event_bus, sessions, other["id"])
    # Build 3: never ready, so all of its tasks are blocked.
    await submit_build(api, user, build_body("Q9", ["x86_64"], refs=1))

    first = await get_task(api, node_a, ["x86_64"])
    second = await get_task(api, node_b, ["aarch64"])
    assert first is not None
    assert second is not None
    # node-b went silent: its lease ran out, the reaper has not passed yet.
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(BuildTask)
            .where(BuildTask.id == second["id"])
            .values(lease_expires_at=utcnow() - timedelta(seconds=5))
        )

    answer = await api.get("/api/v1/queue/", headers=admin)
    assert answer.status_code == 200, answer.text
    queue = answer.json()
    groups = {(g["platform"], g["arch"]): g for g in queue["groups"]}
    assert set(groups) == {("Q8", "x86_64"), ("Q8", "aarch64"), ("Q9", "x86_64")}
    x86 = groups[("Q8", "x86_64")]
    assert (x86["idle"], x86["runnable"], x86["blocked"], x86["started"]) == (1, 0, 1, 1)
    assert x86["oldest_runnable_wait_seconds"] is None
    arm = groups[("Q8", "aarch64")]
    assert (arm["idle"], arm["runnable"], arm["blocked"], arm["started"]) == (0, 0, 0, 1)
    q9 = groups[("Q9", "x86_64")]
    assert (q9["idle"], q9["runnable"], q9["blocked"], q9["started"]) == (1, 0, 1, 0)
    assert (queue["idle"], queue["runnable"], queue["started"]) == (2, 0, 2)

    nodes = {n["node_id"]: n for n in queue["nodes"]}
    assert set(nodes) == {"node-a/b1", "node-b"}
    held = nodes["node-a/b1"]["tasks"]
    assert [(t["task_id"], t["build_id"], t["arch"], t["attempt"]) for t in held] == [
        (first["id"], ready["id"], "x86_64", 1)
    ]
    assert held[0]["lease_expired"] is False
    assert nodes["node-a/b1"]["last_seen"] is not None
    assert [
        (t["task_id"], t["build_id"], t["lease_expired"]) for t in nodes["node-b"]["tasks"]
    ] == [(second["id"], other["id"], True)]


async def test_a_runnable_task_shows_its_wait(
    api: httpx.AsyncClient, make_token: TokenMaker, event_bus: EventBus, sessions: SessionFactory
) -> None:
    admin = bearer(await make_token("root", admin=True))
    await create_platform(api, admin, platform_body("W8", ["x86_64"]))
    build = await submit_build(api, admin, build_body("W8", ["x86_64"], refs=1))
    await mark_ready(event_bus, sessions, build["id"])
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(BuildTask)
            .where(BuildTask.build_id == build["id"])
            .values(created_at=utcnow() - timedelta(minutes=10))
        )
    queue = (await api.get("/api/v1/queue/", headers=admin)).json()
    (group,) = queue["groups"]
    assert (group["idle"], group["runnable"], group["blocked"]) == (1, 1, 0)
    assert 600 <= group["oldest_runnable_wait_seconds"] < 700
    assert 600 <= queue["oldest_runnable_wait_seconds"] < 700
    assert queue["nodes"] == []


async def test_only_administrators_see_the_queue(
    api: httpx.AsyncClient, make_token: TokenMaker
) -> None:
    answer = await api.get("/api/v1/queue/", headers=bearer(await make_token("someone")))
    assert answer.status_code == 403
