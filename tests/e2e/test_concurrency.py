"""Three scheduler replicas, fifty nodes, two thousand tasks: each handed out once per attempt."""

import asyncio
from collections import Counter

import httpx
from sqlalchemy import func, select, text

from shared.db.models import BuildTask, UserKind
from shared.db.models.builds import UNSETTLED
from tests.support.builds import platform_body
from tests.support.events import tap_events
from tests.support.live_stack import LiveStack
from tests.support.nodes import NodeRecord, run_node
from tests.support.waiting import eventually

NODES = 50
BUILDS = 10
REFS_PER_BUILD = 200  # 10 x 200 = 2,000 tasks; each build is one chain of 200 refs


async def all_builds(client: httpx.AsyncClient, user: dict[str, str], ids: list[int]) -> list[str]:
    return [(await client.get(f"/api/v1/builds/{i}/", headers=user)).json()["status"] for i in ids]


async def unsettled_tasks(live_stack: LiveStack, build_ids: list[int]) -> int:
    async with live_stack.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(BuildTask)
            .where(BuildTask.build_id.in_(build_ids), text(UNSETTLED))
        )
    return int(count or 0)


async def test_every_task_is_assigned_once_per_attempt_and_every_build_completes(
    live_stack: LiveStack, run_id: str
) -> None:
    admin = await live_stack.token("conc-admin", admin=True)
    user = await live_stack.token("conc-user")
    node = await live_stack.token("conc-node", kind=UserKind.NODE)
    platform = f"Conc-{run_id}"
    prefix = live_stack.env["ALBS_AMQP_PREFIX"]
    async with (
        tap_events(live_stack.env["ALBS_AMQP_URL"], prefix) as tap,
        # A kept-alive connection per node, as each albs-node has its own (httpx keeps 20
        # by default: the other 30 nodes would connect anew for every request).
        httpx.AsyncClient(
            base_url=live_stack.gateway_url,
            timeout=60,
            # Idle connections are dropped before uvicorn's 5 s keep-alive closes them, or a
            # request races the server's close and reads nothing.
            limits=httpx.Limits(
                max_connections=NODES + 10,
                max_keepalive_connections=NODES + 10,
                keepalive_expiry=2.0,
            ),
        ) as client,
    ):
        created = await client.post(
            "/api/v1/platforms/", json=platform_body(platform, ["x86_64"]), headers=admin
        )
        assert created.status_code == 200, created.text
        build_ids = []
        for b in range(BUILDS):
            body = {
                "platforms": [{"name": platform, "arch_list": ["x86_64"]}],
                "tasks": [
                    {"url": f"https://git.example.org/b{b}/r{r}.git"} for r in range(REFS_PER_BUILD)
                ],
            }
            answer = await client.post("/api/v1/builds/", json=body, headers=user)
            assert answer.status_code == 200, answer.text
            build_ids.append(answer.json()["id"])

        record, stop = NodeRecord(), asyncio.Event()
        nodes = [
            asyncio.create_task(
                run_node(
                    client, {**node, "X-Node-Id": f"sim-{n}"}, ["x86_64", "i686"], record, stop
                )
            )
            for n in range(NODES)
        ]
        try:

            async def finished() -> bool:
                # One indexed count per second; the builds' views (200 tasks each, through
                # the gateway that the nodes are busy with) only once no task is unsettled.
                if await unsettled_tasks(live_stack, build_ids):
                    return False
                statuses = await all_builds(client, user, build_ids)
                return all(s != "queued" and s != "running" for s in statuses)

            await eventually(finished, timeout=900, every=1.0)
        finally:
            stop.set()
            crashed = [
                r for r in await asyncio.gather(*nodes, return_exceptions=True) if r is not None
            ]
        statuses = await all_builds(client, user, build_ids)
        async with live_stack.sessions() as session:
            tasks = (
                await session.scalars(select(BuildTask).where(BuildTask.build_id.in_(build_ids)))
            ).all()
        # Every attempt is announced (the relay keeps up); the tap sees what consumers see.
        attempts = sum(t.attempt for t in tasks)
        assigned = await tap.settled("build_task.assigned", attempts, timeout=120)

    assert crashed == [], f"{crashed!r}\n{live_stack.logs()}"  # every node polled to the end
    assert statuses == ["completed"] * BUILDS, live_stack.logs()
    assert len(tasks) == BUILDS * REFS_PER_BUILD
    assert all(t.status == 2 for t in tasks)
    per_attempt = Counter(
        (a["task_id"], a["attempt"]) for a in assigned if a["build_id"] in build_ids
    )
    assert set(per_attempt.values()) == {1}  # never two nodes for the same attempt
    received = Counter(record.received)
    assert {t.id: received[t.id] for t in tasks} == {t.id: t.attempt for t in tasks}  # no task lost
    assert set(record.answers) <= {200, 409}
