"""Benchmark the artifacts path against a running stack (see bench/README.md).

1. repositories: `--repo-builds` builds of one platform and two arches (i686, aarch64) are
   submitted one after another; each is timed from the create answer until it is ready.
2. reports: one build of `--reports` chained refs; a simulated albs-node takes each task,
   uploads 3 RPMs and 12 logs to Pulp as albs-node does (chunked uploads; `--basic-auth`
   for the node's per-request basic auth),
   reports `build_done`, and times build_done -> artifacts stored (rows in PostgreSQL)
   and build_done -> the next ref handed out (the dependent released).
3. backlog (`--backlog N`): N builds of one ref each; a simulated node takes their N tasks
   and uploads N reports (chunked uploads, not timed), then sends the N `build_done` at
   once, so they queue up at the artifacts service, and times the drain: from the first
   build_done sent until every report is stored, reports/s, p50/p99 build_done -> stored.

Pulp calls, Pulp tasks and the seconds spent waiting on Pulp tasks, per report and per
build, come from the artifacts service's log lines.
"""

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import TypeVar

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ROOT = Path(__file__).resolve().parents[1]
# This file's own folder comes first on sys.path, and its name would shadow the service.
sys.path[0] = str(ROOT)

from artifacts.settings import ArtifactsSettings  # noqa: E402
from tests.support.pulp_node import PulpServer, upload_artifact  # noqa: E402
from tests.support.rpms import build_rpm_set  # noqa: E402

NODE = "/api/v1/build_node"
ARTIFACTS_LOG = ROOT / ".dev" / "logs" / "artifacts.log"
LOG_NAMES = [
    "albs.{ts}.log",
    "mock_build.srpm.{ts}.log",
    "mock_root.srpm.{ts}.log",
    "mock_state.srpm.{ts}.log",
    "mock.srpm.{ts}.cfg",
    "mock_build.{ts}.log",
    "mock_root.{ts}.log",
    "mock_state.{ts}.log",
    "mock_hw_info.{ts}.log",
    "mock_installed_pkgs.{ts}.log",
    "mock.{ts}.cfg",
    "build_stats.yml",
]
POLL = 0.02
# Stored: the rows, or the event saying why not (a failed report has no rows).
STORED = """SELECT EXISTS (SELECT 1 FROM build_artifacts WHERE build_task_id = :t)
    OR EXISTS (SELECT 1 FROM outbox WHERE routing_key = 'build_task.artifacts_stored'
               AND (payload->>'task_id')::int = :t)"""
T = TypeVar("T")
STORED_ERROR = """SELECT payload->>'error' FROM outbox
    WHERE routing_key = 'build_task.artifacts_stored' AND (payload->>'task_id')::int = :t"""


def token(*args: str) -> str:
    command = [str(ROOT / ".venv" / "bin" / "albs"), "token", "create", *args]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


TALLY = r"\((\d+ Pulp calls, \d+ Pulp tasks[^)]*)\)"


def pulp_counts(pattern: str) -> str:
    """The Pulp call counts the artifacts service logged for one report or build."""
    if not ARTIFACTS_LOG.exists():
        return "?"
    found = re.findall(pattern + r".*" + TALLY, ARTIFACTS_LOG.read_text())
    return found[-1] if found else "?"


async def create_platform(client: httpx.AsyncClient, admin: str) -> str:
    platform = f"bench-{secrets.token_hex(3)}"
    body = {
        "name": platform,
        "type": "rpm",
        "distr_type": "rhel",
        "distr_version": "8",
        "test_dist_name": "almalinux",
        "arch_list": ["x86_64", "i686", "aarch64"],
        "repos": [],
        "data": {"mock": {}, "yum": {}, "definitions": {}},
    }
    (await client.post("/api/v1/platforms/", json=body, headers=bearer(admin))).raise_for_status()
    return platform


async def submit(
    client: httpx.AsyncClient, user: str, platform: str, arches: list[str], refs: int
) -> int:
    build = {
        "platforms": [{"name": platform, "arch_list": arches}],
        "tasks": [
            {"url": f"https://git.example.org/bench/{secrets.token_hex(4)}.git"}
            for _ in range(refs)
        ],
    }
    answer = await client.post("/api/v1/builds/", json=build, headers=bearer(user))
    answer.raise_for_status()
    return int(answer.json()["id"])


async def until(engine: AsyncEngine, query: str, params: dict[str, int], limit: float) -> float:
    """Seconds until the query answers true (polled every 20 ms); SystemExit after `limit`."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        async with engine.connect() as conn:
            if await conn.scalar(text(query), params):
                return time.perf_counter() - started
        await asyncio.sleep(POLL)
    raise SystemExit(f"not true within {limit} s: {query} {params}")


async def repositories_phase(
    client: httpx.AsyncClient, engine: AsyncEngine, user: str, platform: str, builds: int
) -> list[float]:
    took = []
    for _ in range(builds):
        # Arches the simulated node never asks for: these tasks stay out of the report phase.
        build_id = await submit(client, user, platform, ["i686", "aarch64"], 1)
        seconds = await until(
            engine, "SELECT ready FROM builds WHERE id = :b", {"b": build_id}, 300
        )
        counts = pulp_counts(rf"build {build_id}: \d+ repositories made")
        print(f"  build {build_id}: repositories ready in {seconds:.2f} s ({counts})")
        took.append(seconds)
    return took


def make_report_files(workdir: Path, run: str, index: int) -> list[tuple[Path, str]]:
    rpms = build_rpm_set(workdir, name=f"bench-{run}", release=str(index + 1), arch="x86_64")
    files = [(rpms.src, "rpm"), (rpms.binary, "rpm"), (rpms.debuginfo, "rpm")]
    ts = int(time.time()) + index
    for name in LOG_NAMES:
        path = workdir / f"logs-{index}" / name.format(ts=ts)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Build logs are tens of kilobytes of text, different every time.
        lines = (f"{index} {n} {secrets.token_hex(24)} building bench-{run}\n" for n in range(600))
        path.write_text("".join(lines))
        files.append((path, "build_log"))
    return files


async def take_task(client: httpx.AsyncClient, node: str, limit: float) -> tuple[int, float]:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        answer = await client.request(
            "GET", f"{NODE}/get_task", json={"supported_arches": ["x86_64"]}, headers=bearer(node)
        )
        task = answer.raise_for_status().json()
        if task:
            return int(task["id"]), time.perf_counter() - started
        await asyncio.sleep(POLL)
    raise SystemExit(f"no task within {limit} s")


async def reports_phase(
    client: httpx.AsyncClient, engine: AsyncEngine, user: str, node: str, args: argparse.Namespace
) -> tuple[list[float], list[float]]:
    build_id = await submit(client, user, args.platform, ["x86_64"], args.reports)
    await until(engine, "SELECT ready FROM builds WHERE id = :b", {"b": build_id}, 300)
    settings = ArtifactsSettings()
    run = secrets.token_hex(3)
    stored, released = [], []
    server = PulpServer(
        settings.pulp_url, settings.pulp_user, settings.pulp_password.get_secret_value()
    )
    with tempfile.TemporaryDirectory() as tmp:
        reports = [make_report_files(Path(tmp), run, i) for i in range(args.reports)]
        # albs-node sends basic auth on every request (Pulp hashes the password each time):
        # --basic-auth does the same; by default the uploads, which come before the timed
        # part, use a session so that a run takes minutes, not most of an hour.
        uploads: contextlib.AbstractAsyncContextManager[httpx.AsyncClient] = (
            server.node_client(timeout=60) if args.basic_auth else server.session_client(60)
        )
        async with uploads as pulp:
            task_id, _ = await take_task(client, node, 60)
            for index, files in enumerate(reports):
                hrefs = [
                    await upload_artifact(pulp, path, chunk_size=64 * 1024) for path, _ in files
                ]
                artifacts = [
                    {"name": path.name, "type": kind, "href": href}
                    for (path, kind), href in zip(files, hrefs, strict=True)
                ]
                body = {"task_id": task_id, "status": "done", "artifacts": artifacts}
                done = await client.post(f"{NODE}/build_done", json=body, headers=bearer(node))
                done.raise_for_status()
                seconds = await until(engine, STORED, {"t": task_id}, 600)
                async with engine.connect() as conn:
                    error = await conn.scalar(text(STORED_ERROR), {"t": task_id})
                if error:  # no rows: the bench cannot go on with this chain
                    raise SystemExit(f"task {task_id}: {error}")
                stored.append(seconds)
                line = f"  task {task_id}: stored in {seconds:.2f} s"
                if index + 1 < len(reports):
                    task_id, waited = await take_task(client, node, 600)
                    released.append(seconds + waited)
                    line += f", next ref handed out after {seconds + waited:.2f} s"
                print(line)
    return stored, released


BACKLOG_STORED = """SELECT build_task_id FROM build_artifacts WHERE build_task_id = ANY(:ids)
    UNION SELECT (payload->>'task_id')::int FROM outbox
    WHERE routing_key = 'build_task.artifacts_stored' AND (payload->>'task_id')::int = ANY(:ids)"""
BACKLOG_ERRORS = """SELECT (payload->>'task_id')::int, payload->>'error' FROM outbox
    WHERE routing_key = 'build_task.artifacts_stored' AND (payload->>'task_id')::int = ANY(:ids)
    AND payload->>'error' IS NOT NULL"""
# Uploads and rpmbuild of the setup run this many at a time.
PULP_CALLS_METRIC = "albs_pulp_request_duration_seconds_count"
SETUP_PARALLEL = 4


async def bounded(limit: int, steps: Sequence[Awaitable[T]]) -> list[T]:
    slots = asyncio.Semaphore(limit)

    async def one(step: Awaitable[T]) -> T:
        async with slots:
            return await step

    return await asyncio.gather(*(one(step) for step in steps))


async def pulp_calls_so_far(client: httpx.AsyncClient) -> float | None:
    """All Pulp HTTP calls of the artifacts process (its /metrics), task polls included."""
    base = int(os.environ.get("ALBS_DEV_OPS_BASE", "9100"))
    try:
        answer = await client.get(f"http://127.0.0.1:{base + 1}/metrics")
    except httpx.HTTPError:
        return None
    lines = answer.text.splitlines() if answer.is_success else []
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(PULP_CALLS_METRIC)
    )


async def upload_retried(pulp: httpx.AsyncClient, path: Path, attempts: int = 3) -> str:
    """A commit task whose process died (a busy shared machine) is Pulp's trouble: again."""
    for attempt in range(attempts):
        try:
            return await upload_artifact(pulp, path, chunk_size=64 * 1024)
        except AssertionError as exc:
            if "died unexpectedly" not in str(exc) or attempt + 1 == attempts:
                raise
    raise AssertionError("unreachable")


async def upload_report(
    pulp: httpx.AsyncClient, files: list[tuple[Path, str]]
) -> list[dict[str, str]]:
    hrefs = [await upload_retried(pulp, path) for path, _ in files]
    return [
        {"name": path.name, "type": kind, "href": href}
        for (path, kind), href in zip(files, hrefs, strict=True)
    ]


async def backlog_phase(
    client: httpx.AsyncClient, engine: AsyncEngine, user: str, node: str, args: argparse.Namespace
) -> tuple[float, list[float]]:
    """Queue `--backlog` reports at once; (drain seconds, build_done -> stored per report)."""
    count = args.backlog
    started = time.perf_counter()
    builds = [await submit(client, user, args.platform, ["x86_64"], 1) for _ in range(count)]
    ready = "SELECT count(*) = :n FROM builds WHERE id = ANY(:ids) AND ready"
    await until(engine, ready, {"n": count, "ids": builds}, 900)  # type: ignore[dict-item]
    print(f"  {count} builds ready in {time.perf_counter() - started:.1f} s (setup, not timed)")
    tasks = [(await take_task(client, node, 60))[0] for _ in range(count)]
    settings = ArtifactsSettings()
    server = PulpServer(
        settings.pulp_url, settings.pulp_user, settings.pulp_password.get_secret_value()
    )
    run = secrets.token_hex(3)
    with tempfile.TemporaryDirectory() as tmp:
        made = [asyncio.to_thread(make_report_files, Path(tmp), run, i) for i in range(count)]
        reports = await bounded(SETUP_PARALLEL, made)
        started = time.perf_counter()
        async with server.session_client(120) as pulp:
            uploads = [upload_report(pulp, files) for files in reports]
            bodies = await bounded(SETUP_PARALLEL, uploads)
    print(f"  {count} reports uploaded in {time.perf_counter() - started:.1f} s (not timed)")
    load = os.getloadavg()[0]

    async def done(task_id: int, artifacts: list[dict[str, str]]) -> float:
        body = {"task_id": task_id, "status": "done", "artifacts": artifacts}
        answer = await client.post(f"{NODE}/build_done", json=body, headers=bearer(node))
        answer.raise_for_status()
        return time.perf_counter()

    calls_before = await pulp_calls_so_far(client)
    first = time.perf_counter()
    answered = dict(
        zip(
            tasks,
            await asyncio.gather(*(done(t, b) for t, b in zip(tasks, bodies, strict=True))),
            strict=True,
        )
    )
    stored: dict[int, float] = {}
    while len(stored) < count and time.perf_counter() - first < args.backlog_limit:
        async with engine.connect() as conn:
            rows = await conn.execute(text(BACKLOG_STORED), {"ids": tasks})
            now = time.perf_counter()
            for (task_id,) in rows:
                stored.setdefault(task_id, now)
        await asyncio.sleep(POLL * 5)
    async with engine.connect() as conn:
        errors = (await conn.execute(text(BACKLOG_ERRORS), {"ids": tasks})).all()
    if errors:
        raise SystemExit(f"{len(errors)} report(s) stored with an error, e.g. {errors[0]}")
    if len(stored) < count:
        raise SystemExit(f"only {len(stored)} of {count} reports stored in {args.backlog_limit} s")
    drain = max(stored.values()) - first
    calls_after = await pulp_calls_so_far(client)
    if calls_before is not None and calls_after is not None:
        print(
            f"  artifacts process: {(calls_after - calls_before) / count:.1f} Pulp HTTP calls "
            "per report during the drain (task polls included, from its /metrics)"
        )
    print(
        f"  {count} build_done sent in {max(answered.values()) - first:.2f} s; "
        f"load average at the start {load:.2f}, at the end {os.getloadavg()[0]:.2f}"
    )
    return drain, [stored[t] - answered[t] for t in tasks]


def report_counts(limit: int) -> list[str]:
    if not ARTIFACTS_LOG.exists():
        return []
    return re.findall(r"artifact\(s\) filed in .*" + TALLY, ARTIFACTS_LOG.read_text())[-limit:]


def backlog_counts(limit: int) -> None:
    """Pulp calls, tasks and task-wait seconds of the last `limit` reports, as logged."""
    found = [
        re.search(r"(\d+) Pulp calls, (\d+) Pulp tasks(?:, ([\d.]+) s on tasks)?", line)
        for line in report_counts(limit)
    ]
    rows = [m.groups() for m in found if m]
    if not rows:
        return
    for label, column in (("Pulp calls", 0), ("Pulp tasks", 1), ("s waiting on tasks", 2)):
        values = [float(row[column]) for row in rows if row[column] is not None]
        if values:
            print(
                f"  per report, {label}: p50 {percentile(values, 50):g}, "
                f"min {min(values):g}, max {max(values):g}"
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reports", type=int, default=10, help="reports filed one after another")
    parser.add_argument("--repo-builds", type=int, default=3, help="builds whose repos are timed")
    parser.add_argument("--basic-auth", action="store_true", help="upload with basic auth")
    parser.add_argument("--backlog", type=int, default=0, help="reports queued at once")
    parser.add_argument("--backlog-limit", type=float, default=900, help="drain time bound (s)")
    args = parser.parse_args()
    url = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8088")
    engine = create_async_engine(ArtifactsSettings().database_url, pool_size=2)
    admin, user, node = (
        token("--username", "bench-admin", "--admin"),
        token("--username", "bench"),
        token("--node", "bench-node"),
    )
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        args.platform = await create_platform(client, admin)
        print(f"repositories of {args.repo_builds} builds (1 platform, i686 + aarch64):")
        repos = await repositories_phase(client, engine, user, args.platform, args.repo_builds)
        stored: list[float] = []
        released: list[float] = []
        if args.reports:
            print(f"{args.reports} reports of 3 RPMs + 12 logs, one after another:")
            stored, released = await reports_phase(client, engine, user, node, args)
        if args.backlog:
            print(f"backlog: {args.backlog} reports of 3 RPMs + 12 logs queued at once:")
            drain, latencies = await backlog_phase(client, engine, user, node, args)
    await engine.dispose()
    if repos:
        print(f"repository creation: p50 {percentile(repos, 50):.2f} s, max {max(repos):.2f} s")
    if stored:
        print(
            f"build_done -> stored: p50 {percentile(stored, 50):.2f} s, "
            f"p99 {percentile(stored, 99):.2f} s"
        )
    if released:
        print(
            f"build_done -> next ref handed out: p50 {percentile(released, 50):.2f} s, "
            f"p99 {percentile(released, 99):.2f} s"
        )
    counts = report_counts(args.reports)
    if counts:
        print(f"Pulp calls per report (artifacts log): {', '.join(sorted(set(counts)))}")
    if args.backlog:
        print(
            f"backlog of {args.backlog}: drained in {drain:.1f} s = "
            f"{args.backlog / drain:.2f} reports/s; build_done -> stored "
            f"p50 {percentile(latencies, 50):.2f} s, p99 {percentile(latencies, 99):.2f} s"
        )
        backlog_counts(args.backlog)


if __name__ == "__main__":
    asyncio.run(main())
