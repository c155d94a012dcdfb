"""kill -9 of one scheduler replica in the middle of a run: every task still completes once.

Twenty simulated nodes build 300 tasks through the live stack (three scheduler replicas,
3 s leases). When a third of the tasks have been handed out, one replica is killed with
SIGKILL: no shutdown, its unacknowledged RPCs go back to the queue, and a claim it committed
but never answered (when the kill lands in that window) stays with its lease. Afterwards
every task has completed exactly once, no attempt was handed out twice, and a claim whose
answer was lost came back through the lease reaper (a later attempt), never by being handed
out again in the same attempt. The test prints what the kill caught (-rA shows it).
"""

import asyncio
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from shared.db.models import BuildTask, BuildTaskStatus, OutboxMessage, UserKind
from tests.support.builds import platform_body
from tests.support.live_stack import LiveStack
from tests.support.nodes import NODE
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.pulp]  # the builds' repositories are made in Pulp

NODES = 20
BUILDS = 3
REFS_PER_BUILD = 100  # 3 x 100 = 300 tasks in three chains (each build's Pulp repositories cost)
KILL_AFTER = 100  # tasks handed out before the kill
VICTIM = "scheduler-2"
RUN_TIMEOUT = 200.0  # seconds, for the whole run after the builds were created (a hard cap)
BUILD_DONE_TRIES = 20


@dataclass
class Record:
    received: list[int] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)
    unavailable: int = 0  # 503s while the replica was gone (retried, as albs-node does)
    first_at: float | None = None  # when the first task was handed out (repositories ready)


async def node_loop(
    client: httpx.AsyncClient, headers: dict[str, str], record: Record, stop: asyncio.Event
) -> None:
    """albs-node's loop with its patience: a 503 means "try again shortly", never a crash."""
    body = {"supported_arches": ["x86_64"]}
    while not stop.is_set():
        answer = await client.request("GET", f"{NODE}/get_task", json=body, headers=headers)
        if answer.status_code == 503:
            record.unavailable += 1
            await asyncio.sleep(0.5)
            continue
        assert answer.status_code == 200, answer.text
        task: dict[str, Any] | None = answer.json()
        if task is None:
            await asyncio.sleep(random.uniform(0.2, 0.4))
            continue
        record.received.append(task["id"])
        record.first_at = record.first_at or time.monotonic()
        report = {"task_id": task["id"], "status": "done", "artifacts": []}
        for _ in range(BUILD_DONE_TRIES):
            done = await client.post(f"{NODE}/build_done", json=report, headers=headers)
            if done.status_code != 503:
                break
            record.unavailable += 1
            await asyncio.sleep(0.5)
        record.answers[done.status_code] += 1


async def test_killing_a_replica_loses_no_task_and_hands_none_out_twice(
    live_stack: LiveStack, run_id: str
) -> None:
    admin = await live_stack.token("kill-admin", admin=True)
    user = await live_stack.token("kill-user")
    node = await live_stack.token("kill-node", kind=UserKind.NODE)
    platform = f"Kill-{run_id}"
    victim = live_stack.process(VICTIM)
    async with httpx.AsyncClient(base_url=live_stack.gateway_url, timeout=60) as client:
        created = await client.post(
            "/api/v1/platforms/", json=platform_body(platform, ["x86_64"]), headers=admin
        )
        assert created.status_code == 200, created.text
        build_ids = []
        for b in range(BUILDS):
            body = {
                "platforms": [{"name": platform, "arch_list": ["x86_64"]}],
                "tasks": [
                    {"url": f"https://git.example.org/kill{b}/r{r}.git"}
                    for r in range(REFS_PER_BUILD)
                ],
            }
            answer = await client.post("/api/v1/builds/", json=body, headers=user)
            assert answer.status_code == 200, answer.text
            build_ids.append(answer.json()["id"])

        async def statuses() -> list[str]:
            return [
                (await client.get(f"/api/v1/builds/{i}/", headers=user)).json()["status"]
                for i in build_ids
            ]

        record, stop = Record(), asyncio.Event()
        started = time.monotonic()
        nodes = [
            asyncio.create_task(
                node_loop(client, {**node, "X-Node-Id": f"sim-{n}"}, record, stop),
                name=f"node-{n}",
            )
            for n in range(NODES)
        ]
        exit_code: int | None = None
        try:

            async def enough_handed_out() -> bool:
                assert not any(n.done() for n in nodes), [n.exception() for n in nodes if n.done()]
                return len(record.received) >= KILL_AFTER

            try:
                await eventually(enough_handed_out, timeout=RUN_TIMEOUT, every=0.05)
            except AssertionError as exc:
                exc.add_note(
                    f"{len(record.received)} tasks handed out; builds {await statuses()}; "
                    f"artifacts log:\n{live_stack.process('artifacts').log()[-3000:]}"
                )
                raise
            exit_code = victim.kill()
            killed_at = len(record.received)

            async def all_finished() -> bool:
                assert not any(n.done() for n in nodes), [n.exception() for n in nodes if n.done()]
                return all(s not in ("queued", "running") for s in await statuses())

            remaining = RUN_TIMEOUT - (time.monotonic() - started)
            await eventually(all_finished, timeout=max(remaining, 1.0), every=1.0)
            ended = time.monotonic()
        finally:
            stop.set()
            await asyncio.gather(*nodes, return_exceptions=True)
            if not victim.running:  # the rest of the session gets its three replicas back
                victim.start()
                victim.wait_ready()
        final = await statuses()

    assert exit_code == -signal.SIGKILL
    assert final == ["completed"] * BUILDS, live_stack.logs()
    async with live_stack.sessions() as session:
        tasks = (
            await session.scalars(select(BuildTask).where(BuildTask.build_id.in_(build_ids)))
        ).all()
        events = (
            await session.execute(
                select(OutboxMessage.routing_key, OutboxMessage.payload).where(
                    OutboxMessage.routing_key.in_(["build_task.assigned", "build_task.finished"])
                )
            )
        ).all()
    ours = {t.id for t in tasks}
    assigned = Counter(
        (p["task_id"], p["attempt"])
        for key, p in events
        if key == "build_task.assigned" and p["task_id"] in ours
    )
    finished = Counter(
        p["task_id"] for key, p in events if key == "build_task.finished" and p["task_id"] in ours
    )
    received = Counter(record.received)

    assert len(tasks) == BUILDS * REFS_PER_BUILD
    assert all(t.status == BuildTaskStatus.COMPLETED for t in tasks)
    assert KILL_AFTER <= killed_at < len(tasks)  # the kill happened mid-run
    # Exactly once: one result per task, and no attempt was handed to two nodes.
    assert finished == dict.fromkeys(ours, 1)
    assert set(assigned.values()) == {1}
    assert set(assigned) == {(t.id, a) for t in tasks for a in range(1, t.attempt + 1)}
    # None lost: every task reached a node; an attempt whose answer died with the replica
    # (claimed, never received) was given back by the reaper and built in a later attempt.
    assert all(1 <= received[t.id] <= t.attempt for t in tasks)
    assert set(record.answers) <= {200, 409}, record.answers
    lost = sum(t.attempt - received[t.id] for t in tasks)
    print(  # shown with -rA: what the kill did to this run
        f"killed {VICTIM} after {killed_at} hand-outs; {lost} claims recovered by lease "
        f"expiry, {sum(t.attempt for t in tasks) - len(tasks)} re-attempts, "
        f"{record.unavailable} answers 503 (retried), build_done answers {dict(record.answers)}; "
        f"first task after {(record.first_at or ended) - started:.1f} s, "
        f"all done after {ended - started:.1f} s"
    )
