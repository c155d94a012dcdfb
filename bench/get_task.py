"""Benchmark the Build Node protocol against a running stack (see bench/README.md).

Prints get_task latency with an empty queue and under load with a deep queue, task
assignments per second, and the number of double assignments (must be 0).
"""

import argparse
import asyncio
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ROOT = Path(__file__).resolve().parents[1]
NODE = "/api/v1/build_node"


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    assigned: list[int] = field(default_factory=list)


def token(*args: str) -> str:
    command = [str(ROOT / ".venv" / "bin" / "albs"), "token", "create", *args]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def bearer(value: str, node_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {value}"}
    if node_id:
        headers["X-Node-Id"] = node_id
    return headers


async def poll(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    arches: list[str],
    sample: Sample,
    deadline: float,
    calls: int | None,
    report: bool,
) -> None:
    made = 0
    while time.monotonic() < deadline and (calls is None or made < calls):
        started = time.perf_counter()
        answer = await client.request(
            "GET", f"{NODE}/get_task", json={"supported_arches": arches}, headers=headers
        )
        sample.latencies.append(time.perf_counter() - started)
        made += 1
        task = answer.json()
        if task is None:
            if calls is None:
                await asyncio.sleep(random.uniform(0.01, 0.05))
            continue
        sample.assigned.append(task["id"])
        if report:
            body = {"task_id": task["id"], "status": "done", "artifacts": []}
            (await client.post(f"{NODE}/build_done", json=body, headers=headers)).raise_for_status()


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else float("nan")
    )


async def idle_phase(client: httpx.AsyncClient, node: str, nodes: int, calls: int) -> Sample:
    sample = Sample()
    arch = f"none-{secrets.token_hex(3)}"  # an arch nobody builds: every answer is null
    await asyncio.gather(
        *(
            poll(
                client,
                bearer(node, f"idle-{n}"),
                [arch],
                sample,
                time.monotonic() + 300,
                calls // nodes,
                False,
            )
            for n in range(nodes)
        )
    )
    return sample


async def queue_builds(
    client: httpx.AsyncClient, admin: str, user: str, builds: int, refs: int
) -> tuple[str, list[int]]:
    platform = f"bench-{secrets.token_hex(3)}"
    body = {
        "name": platform,
        "type": "rpm",
        "distr_type": "rhel",
        "distr_version": "8",
        "test_dist_name": "almalinux",
        "arch_list": ["x86_64"],
        "repos": [],
        "data": {"mock": {}, "yum": {}, "definitions": {}},
    }
    (await client.post("/api/v1/platforms/", json=body, headers=bearer(admin))).raise_for_status()
    ids = []
    for b in range(builds):
        build = {
            "platforms": [{"name": platform, "arch_list": ["x86_64"]}],
            "tasks": [{"url": f"https://git.example.org/bench/{b}-{r}.git"} for r in range(refs)],
        }
        answer = await client.post("/api/v1/builds/", json=build, headers=bearer(user))
        answer.raise_for_status()
        ids.append(answer.json()["id"])
    return platform, ids


async def wait_ready(engine: AsyncEngine, build_ids: list[int]) -> None:
    """Repositories are created in Pulp first; tasks become assignable after that."""
    query = text("SELECT count(*) FROM builds WHERE id = ANY(:ids) AND NOT ready")
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            if not await conn.scalar(query, {"ids": build_ids}):
                return
        await asyncio.sleep(2)
    raise SystemExit("some builds never got their repositories")


async def double_assignments(engine: AsyncEngine, build_ids: list[int]) -> int:
    query = text("""
        SELECT count(*) FROM (
            SELECT payload->>'task_id', payload->>'attempt' FROM outbox
            WHERE routing_key = 'build_task.assigned' AND (payload->>'build_id')::int = ANY(:ids)
            GROUP BY 1, 2 HAVING count(*) > 1) AS doubles""")
    async with engine.connect() as conn:
        return int(await conn.scalar(query, {"ids": build_ids}) or 0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--idle-calls", type=int, default=2000)
    parser.add_argument("--builds", type=int, default=20)
    parser.add_argument(
        "--refs", type=int, default=500, help="refs per build (tasks = builds x refs)"
    )
    parser.add_argument("--seconds", type=float, default=60, help="length of the loaded phase")
    args = parser.parse_args()
    url = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8088")
    database_url = os.environ.get(
        "ALBS_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/albs"
    )
    engine = create_async_engine(database_url)
    admin, user, node = (
        token("--username", "bench-admin", "--admin"),
        token("--username", "bench"),
        token("--node", "bench-node"),
    )
    limits = httpx.Limits(max_connections=args.nodes + 10)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        idle = await idle_phase(client, node, min(args.nodes, 10), args.idle_calls)
        print(
            f"idle get_task ({len(idle.latencies)} calls, 10 pollers): "
            f"p50 {percentile(idle.latencies, 50):.1f} ms, p99 {percentile(idle.latencies, 99):.1f} ms"
        )
        _, build_ids = await queue_builds(client, admin, user, args.builds, args.refs)
        await wait_ready(engine, build_ids)
        print(
            f"queued {args.builds * args.refs} tasks in {args.builds} builds (chains of {args.refs} refs)"
        )
        loaded = Sample()
        started = time.monotonic()
        await asyncio.gather(
            *(
                poll(
                    client,
                    bearer(node, f"node-{n}"),
                    ["x86_64", "i686"],
                    loaded,
                    started + args.seconds,
                    None,
                    True,
                )
                for n in range(args.nodes)
            )
        )
        elapsed = time.monotonic() - started
    print(
        f"loaded get_task ({len(loaded.latencies)} calls, {args.nodes} nodes, {elapsed:.0f} s): "
        f"p50 {percentile(loaded.latencies, 50):.1f} ms, p99 {percentile(loaded.latencies, 99):.1f} ms"
    )
    print(
        f"assignments: {len(loaded.assigned)} in {elapsed:.0f} s = {len(loaded.assigned) / elapsed:.1f}/s"
    )
    print(f"double assignments: {await double_assignments(engine, build_ids)}")
    await engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
