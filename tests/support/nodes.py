"""Simulated build nodes: poll get_task, report build_done, over HTTP like albs-node."""

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

NODE = "/api/v1/build_node"


@dataclass
class NodeRecord:
    """What every simulated node received, to check assignments afterwards."""

    received: list[int] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)
    unavailable: int = 0  # get_task 503s (PostgreSQL full, say), retried as albs-node does


async def get_task(
    client: httpx.AsyncClient, headers: dict[str, str], arches: list[str]
) -> dict[str, Any] | None:
    answer = await client.request(
        "GET", f"{NODE}/get_task", json={"supported_arches": arches}, headers=headers
    )
    answer.raise_for_status()
    task: dict[str, Any] | None = answer.json()
    return task


async def build_done(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    task_id: int,
    status: str = "done",
    artifacts: list[dict[str, str]] | None = None,
) -> httpx.Response:
    body = {"task_id": task_id, "status": status, "artifacts": artifacts or []}
    return await client.post(f"{NODE}/build_done", json=body, headers=headers)


async def run_node(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    arches: list[str],
    record: NodeRecord,
    stop: asyncio.Event,
) -> None:
    """Build (instantly) whatever comes, until told to stop; a get_task 503 means "try
    again shortly" (albs-node's patience), anything else unexpected ends the node."""
    while not stop.is_set():
        try:
            task = await get_task(client, headers, arches)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 503:
                raise
            record.unavailable += 1
            await asyncio.sleep(random.uniform(0.3, 0.6))
            continue
        if task is None:
            # albs-node waits 5-10 s. A shorter pause keeps the tests short, but not much
            # shorter: idle nodes polling in a tight loop take the CPU that every task's
            # way through the services needs, which slows the tests down.
            await asyncio.sleep(random.uniform(1.0, 2.0))
            continue
        record.received.append(task["id"])
        answer = await build_done(client, headers, task["id"])
        record.answers[answer.status_code] += 1


@contextlib.asynccontextmanager
async def pinging(
    client: httpx.AsyncClient, node: dict[str, str], task_id: int
) -> AsyncIterator[None]:
    """albs-node's supervisor: ping the active task every second while the block runs."""

    async def loop() -> None:
        while True:
            answer = await client.post(
                f"{NODE}/ping", json={"active_tasks": [task_id]}, headers=node
            )
            assert answer.json() is None
            await asyncio.sleep(1)

    pinger = asyncio.create_task(loop())
    try:
        yield
    finally:
        pinger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinger
