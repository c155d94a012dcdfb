"""Benchmark get_task against a running stack (see bench/README.md).

`seed --tasks Q [--blocked B]` writes Q idle runnable tasks (2 refs x 2 arches per build, the
real AlmaLinux-8 platform, no dependencies) and B tasks blocked behind a dependency into the
stack's database, and prints `seeded Q`. `run` measures, per shape QUEUE/POLLERS: seed the
queue, drain it with pollers calling get_task back to back, then keep polling the empty queue
(closed loop); then an open-loop idle phase at --idle-rate polls/s. One JSON line per shape.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from scheduler.release import mark_repos_ready
from shared.contracts.builds import BuildReposReady
from shared.db.base import utcnow
from shared.db.models import (
    Build,
    BuildTask,
    BuildTaskRef,
    Platform,
    Repository,
    User,
    build_task_dependency,
    platform_repository,
)
from shared.db.session import create_session_factory, unit_of_work
from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = ROOT / "tests" / "integration" / "data" / "platforms.yaml"
GET_TASK = "/api/v1/build_node/get_task"
ARCHES = ["x86_64", "i686"]
GET_TASK_BODY = {"supported_arches": ARCHES}
REFS_PER_BUILD = 2
BLOCKED_PER_BUILD = 1000
SHAPES = "100/1,100/10,400/50,2000/50,10000/50"
BENCH_APP = "albs-bench"


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    assigned: list[int] = field(default_factory=list)
    empty: int = 0
    errors: int = 0
    # What went wrong, by kind: a status, or the exception and whether the connection had
    # been used before (a keep-alive connection the server closed while it was idle).
    error_kinds: Counter[str] = field(default_factory=Counter)


# --- seeding ------------------------------------------------------------------------------


async def ensure_platform(conn: AsyncConnection) -> int:
    spec = yaml.safe_load(PLATFORMS.read_text())
    found = await conn.scalar(select(Platform.id).where(Platform.name == spec["name"]))
    if found is not None:
        return int(found)
    platform_id = await conn.scalar(
        insert(Platform)
        .values(
            **{k: spec[k] for k in ("name", "type", "distr_type", "distr_version")},
            test_dist_name=spec["test_dist_name"],
            arch_list=spec["arch_list"],
            data=spec["data"],
        )
        .returning(Platform.id)
    )
    for repo in spec["repos"]:
        repo_id = await conn.scalar(
            insert(Repository)
            .values(name=repo["name"], arch=repo["arch"], url=repo["url"], type=repo["type"])
            .returning(Repository.id)
        )
        await conn.execute(
            insert(platform_repository).values(platform_id=platform_id, repository_id=repo_id)
        )
    return int(str(platform_id))


async def ensure_user(conn: AsyncConnection) -> int:
    found = await conn.scalar(select(User.id).where(User.username == "bench"))
    if found is not None:
        return int(found)
    user_id = await conn.scalar(
        insert(User).values(username="bench", email="bench@example.org").returning(User.id)
    )
    return int(str(user_id))


async def insert_builds(
    conn: AsyncConnection, user_id: int, platform_id: int, builds: int, per_build: int
) -> list[tuple[int, list[int]]]:
    """`builds` builds of `per_build` idle tasks each; returns (build id, task ids)."""
    build_ids = (
        await conn.scalars(
            insert(Build).returning(Build.id), [{"user_id": user_id} for _ in range(builds)]
        )
    ).all()
    refs = [
        {"build_id": b, "url": f"https://git.example.org/rpms/bench-{b}-{r}.git", "git_ref": "c8"}
        for b in build_ids
        for r in range(max(1, per_build // len(ARCHES)))
    ]
    ref_rows = (
        await conn.execute(
            insert(BuildTaskRef).returning(BuildTaskRef.id, BuildTaskRef.build_id), refs
        )
    ).all()
    index: Counter[int] = Counter()
    tasks = []
    for ref_id, build_id in ref_rows:
        for arch in ARCHES:
            tasks.append(
                {
                    "build_id": build_id,
                    "platform_id": platform_id,
                    "ref_id": ref_id,
                    "status": 0,
                    "index": index[build_id],
                    "arch": arch,
                }
            )
        index[build_id] += 1
    task_rows = (
        await conn.execute(insert(BuildTask).returning(BuildTask.id, BuildTask.build_id), tasks)
    ).all()
    by_build: dict[int, list[int]] = {b: [] for b in build_ids}
    for task_id, build_id in task_rows:
        by_build[build_id].append(task_id)
    return list(by_build.items())


async def seed(engine: AsyncEngine, tasks: int, blocked: int) -> list[int]:
    """Returns the ids of the builds it wrote."""
    async with engine.begin() as conn:
        platform_id = await ensure_platform(conn)
        user_id = await ensure_user(conn)
        per_build = REFS_PER_BUILD * len(ARCHES)
        runnable = await insert_builds(
            conn, user_id, platform_id, -(-tasks // per_build), per_build
        )
        gated = []
        if blocked:
            size = BLOCKED_PER_BUILD
            gated = await insert_builds(conn, user_id, platform_id, -(-blocked // size), size)
    # The scheduler's own path makes the runnable builds' tasks assignable.
    sessions = create_session_factory(engine)
    for start in range(0, len(runnable), 200):
        async with unit_of_work(sessions) as session:
            for build_id, _ in runnable[start : start + 200]:
                await mark_repos_ready(session, BuildReposReady(build_id=build_id))
    if gated:
        await block(engine, gated)
    await vacuum(engine)
    return [b for b, _ in runnable] + [b for b, _ in gated]


async def vacuum(engine: AsyncEngine) -> None:
    """What autovacuum does in production after a bulk change: fresh statistics, dead rows of
    earlier shapes gone. This machine's PostgreSQL runs with autovacuum off; without it the
    planner keeps its guesses from an empty table and the claim's index fills with dead
    entries, which measures the machine, not the code."""
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("build_tasks", "build_task_dependency", "builds", "outbox"):
            await autocommit.execute(text(f"VACUUM ANALYZE {table}"))


async def block(engine: AsyncEngine, builds: list[tuple[int, list[int]]]) -> None:
    """Each build's first task is being built (a lease of a day); the others wait for it."""
    async with engine.begin() as conn:
        gates = [ids[0] for _, ids in builds]
        await conn.execute(
            update(BuildTask)
            .where(BuildTask.id.in_(gates))
            .values(
                status=1, attempt=1, ts=utcnow(), lease_expires_at=text("now() + interval '1 day'")
            )
        )
        edges = [{"task_id": t, "depends_on_id": ids[0]} for _, ids in builds for t in ids[1:]]
        for start in range(0, len(edges), 10000):
            await conn.execute(insert(build_task_dependency), edges[start : start + 10000])
        await conn.execute(
            update(Build).where(Build.id.in_([b for b, _ in builds])).values(ready=True)
        )


async def unseed(engine: AsyncEngine, build_ids: list[int]) -> None:
    async with engine.begin() as conn:
        for start in range(0, len(build_ids), 1000):
            await conn.execute(delete(Build).where(Build.id.in_(build_ids[start : start + 1000])))


# --- measuring ----------------------------------------------------------------------------


def token(*args: str) -> str:
    command = [str(ROOT / ".venv" / "bin" / "albs"), "token", "create", *args]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


class Node:
    """One keep-alive HTTP/1.1 connection asking get_task as albs-node does (GET with a
    JSON body). Written by hand: httpx spends more CPU per call than the server does."""

    def __init__(
        self,
        url: httpx.URL,
        token: str,
        node_id: str,
        path: str = GET_TASK,
        json_body: dict[str, Any] | None = GET_TASK_BODY,
    ) -> None:
        self._host, self._port = url.host, url.port or 80
        body = b"" if json_body is None else json.dumps(json_body).encode()
        typed = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body else ""
        head = (
            f"GET {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Authorization: Bearer {token}\r\nX-Node-Id: {node_id}\r\n{typed}\r\n"
        )
        self._request = head.encode() + body
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.used = False  # whether the current connection already carried a request

    async def ask(self) -> bytes:
        """The answer's body; anything but a 200 is an error."""
        if self._streams is not None and self._streams[0].at_eof():
            # uvicorn closes a keep-alive connection idle for 5 s; like urllib3 (albs-node's
            # client), do not send on a connection the server has already closed.
            await self.close()
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)
            self.used = False
        reader, writer = self._streams
        writer.write(self._request)
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        answer = await reader.readexactly(length)
        self.used = True
        if status != 200:
            raise RuntimeError(
                f"{self._request.split(b' ')[1].decode()} answered {status}: {answer[:200]!r}"
            )
        return answer

    async def get_task(self) -> dict[str, Any] | None:
        task: dict[str, Any] | None = json.loads(await self.ask())
        return task

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def call(node: Node, sample: Sample, since: float | None = None) -> None:
    """One poll; latency counts from `since` (an open loop's scheduled time) if given."""
    started = time.perf_counter() if since is None else since
    try:
        task = await node.get_task()
    except (OSError, RuntimeError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
        sample.errors += 1
        kind = str(exc)[:40] if isinstance(exc, RuntimeError) else type(exc).__name__
        sample.error_kinds[f"{kind} ({'reused' if node.used else 'new'} connection)"] += 1
        await node.close()
        return
    sample.latencies.append(time.perf_counter() - started)
    if task is None:
        sample.empty += 1
    else:
        sample.assigned.append(int(task["id"]))


async def closed_loop(nodes: list[Node], until: float, want: int | None) -> Sample:
    """Pollers back to back until the deadline, or until `want` tasks were handed out."""
    sample = Sample()

    async def poller(node: Node) -> None:
        while time.monotonic() < until and (want is None or len(sample.assigned) < want):
            await call(node, sample)

    await asyncio.gather(*(poller(n) for n in nodes))
    return sample


async def open_loop(make: Any, rate: float, seconds: float) -> Sample:
    """Polls started on a fixed schedule whatever the answers' latency, each on a free
    connection (a new one when all are busy): many nodes, each polling now and then."""
    sample = Sample()
    free: list[Node] = []
    calls: list[asyncio.Task[None]] = []

    async def one(since: float) -> None:
        node = free.pop() if free else make()
        await call(node, sample, since)
        free.append(node)

    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        calls.append(asyncio.create_task(one(due)))
    await asyncio.gather(*calls)
    for node in free:
        await node.close()
    return sample


async def platforms_p50(url: httpx.URL, token: str, seconds: float) -> float | None:
    """p50 of GET /api/v1/platforms/ by one client back to back, for `seconds`."""
    reader = Node(url, token, "bench-reader", path="/api/v1/platforms/", json_body=None)
    latencies: list[float] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.perf_counter()
        await reader.ask()
        latencies.append(time.perf_counter() - started)
    await reader.close()
    return ms(latencies, 50)


def ms(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return None
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000, 1)


async def stack_pids(engine: AsyncEngine) -> dict[str, list[int]]:
    """Every process scripts/dev started (its pid files), and the PostgreSQL backends serving
    the stack's database (all together as `postgresql`; the bench's own are left out)."""
    found = {
        pid_file.stem: [int(pid_file.read_text())]
        for pid_file in sorted((ROOT / ".dev" / "run").glob("*.pid"))
    }
    query = text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name <> :bench"
    )
    async with engine.connect() as conn:
        found["postgresql"] = list((await conn.scalars(query, {"bench": BENCH_APP})).all())
    return found


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """User + system CPU each process (or group) used so far (from /proc/PID/stat), and the
    bench's own (`bench-client`): it competes for the same cores."""
    ticks = os.sysconf("SC_CLK_TCK")
    own = os.times()
    used: dict[str, float] = {"bench-client": own.user + own.system}
    for name, group in pids.items():
        for pid in group:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return used


def cpu_ms_per_call(
    before: dict[str, float], after: dict[str, float], calls: int
) -> dict[str, float]:
    return {
        name: round((after[name] - before[name]) * 1000 / max(calls, 1), 2)
        for name in after
        if name in before
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


async def outbox_doubles(engine: AsyncEngine, build_ids: list[int]) -> int:
    query = text("""
        SELECT count(*) FROM (
            SELECT payload->>'task_id', payload->>'attempt' FROM outbox
            WHERE routing_key = 'build_task.assigned' AND (payload->>'build_id')::int = ANY(:ids)
            GROUP BY 1, 2 HAVING count(*) > 1) AS doubles""")
    async with engine.connect() as conn:
        return int(await conn.scalar(query, {"ids": build_ids}) or 0)


async def measure_shape(
    engine: AsyncEngine, url: httpx.URL, token: str, reader: str, shape: str, args: Any
) -> dict[str, Any]:
    queue, pollers = (int(x) for x in shape.split("/"))
    build_ids = await seed(engine, queue, args.blocked)
    nodes = [Node(url, token, f"bench-{n}") for n in range(pollers)]
    load_before = load_average()
    pids = await stack_pids(engine)
    cpu_start = cpu_seconds(pids)
    started = time.monotonic()
    drain = await closed_loop(nodes, started + args.max_drain_seconds, queue)
    drained_in = time.monotonic() - started
    cpu_drained = cpu_seconds(pids)
    idle = await closed_loop(nodes, time.monotonic() + args.idle_seconds, None)
    cpu_idle = cpu_seconds(pids)
    # The idle poll's yardstick at one poller: a plain authenticated read, back to back.
    read_p50 = await platforms_p50(url, reader, args.idle_seconds) if pollers == 1 else None
    for node in nodes:
        await node.close()
    duplicates = len(drain.assigned) - len(set(drain.assigned))
    duplicates += await outbox_doubles(engine, build_ids)
    await unseed(engine, build_ids)
    return {
        "shape": shape,
        "blocked": args.blocked,
        "assigned": len(drain.assigned),
        "seconds": round(drained_in, 2),
        "rate": round(len(drain.assigned) / drained_in, 1),
        "p50_ms": ms(drain.latencies, 50),
        "p99_ms": ms(drain.latencies, 99),
        "idle_rate": round(len(idle.latencies) / args.idle_seconds, 1),
        "idle_p50_ms": ms(idle.latencies, 50),
        "idle_p99_ms": ms(idle.latencies, 99),
        "platforms_get_p50_ms": read_p50,
        "errors": drain.errors + idle.errors,
        "error_kinds": dict(drain.error_kinds + idle.error_kinds),
        "duplicates": duplicates,
        "left_in_queue": queue - len(set(drain.assigned)),
        "cpu_ms_per_claim": cpu_ms_per_call(cpu_start, cpu_drained, len(drain.assigned)),
        "cpu_ms_per_idle_poll": cpu_ms_per_call(cpu_drained, cpu_idle, len(idle.latencies)),
        "load": [load_before, load_average()],
    }


async def run(args: Any, engine: AsyncEngine) -> None:
    url = httpx.URL(os.environ.get("GATEWAY_URL", "http://127.0.0.1:8088"))
    node = token("--node", "bench-node")
    reader = token("--username", "bench-reader")
    for shape in args.shapes.split(",") if args.shapes else []:
        print(json.dumps(await measure_shape(engine, url, node, reader, shape, args)), flush=True)
    if args.idle_rate:
        names = iter(range(10**6))
        load_before = load_average()
        pids = await stack_pids(engine)
        cpu_start = cpu_seconds(pids)
        sample = await open_loop(
            lambda: Node(url, node, f"idle-{next(names)}"), args.idle_rate, args.idle_rate_seconds
        )
        cpu_end = cpu_seconds(pids)
        line = {
            "shape": f"open-loop idle {args.idle_rate}/s for {args.idle_rate_seconds:g} s",
            "calls": len(sample.latencies),
            "idle_p50_ms": ms(sample.latencies, 50),
            "idle_p99_ms": ms(sample.latencies, 99),
            "errors": sample.errors,
            "error_kinds": dict(sample.error_kinds),
            "assigned": len(sample.assigned),
            "cpu_ms_per_idle_poll": cpu_ms_per_call(cpu_start, cpu_end, len(sample.latencies)),
            "load": [load_before, load_average()],
        }
        print(json.dumps(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    modes = parser.add_subparsers(dest="mode", required=True)
    seeding = modes.add_parser("seed", help="write queued tasks into the stack's database")
    seeding.add_argument("--tasks", type=int, required=True)
    seeding.add_argument("--blocked", type=int, default=0)
    running = modes.add_parser("run", help="measure the shapes")
    running.add_argument("--shapes", default=SHAPES, help="QUEUE/POLLERS,...")
    running.add_argument("--blocked", type=int, default=0, help="blocked tasks in every shape")
    running.add_argument("--max-drain-seconds", type=float, default=60)
    running.add_argument("--idle-seconds", type=float, default=5)
    running.add_argument("--idle-rate", type=int, default=200, help="open-loop polls/s; 0: none")
    running.add_argument("--idle-rate-seconds", type=float, default=10)
    args = parser.parse_args()
    # The stack's own settings (.env next to scripts/dev), as the services read them.
    os.chdir(ROOT)
    engine = create_async_engine(
        CommonSettings().database_url,
        pool_size=2,
        connect_args={"server_settings": {"application_name": BENCH_APP}},
    )

    async def go() -> None:
        try:
            if args.mode == "seed":
                await seed(engine, args.tasks, args.blocked)
                print(f"seeded {args.tasks}")
            else:
                await run(args, engine)
        finally:
            await engine.dispose()

    asyncio.run(go())


if __name__ == "__main__":
    main()
