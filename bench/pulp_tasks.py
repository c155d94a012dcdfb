"""What Pulp's task workers did in a time window (see bench/README.md).

For every Pulp task finished in the last `--minutes` (or since `--since`, an ISO time), by
task name: how many, the seconds each waited in Pulp's queue (created -> started) and ran
(started -> finished), p50/p99, and the worker-seconds they took together. Run right after
a bench: the run time per task is what bounds a backlog (worker-seconds / workers).
"""

import argparse
import asyncio
import os
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import httpx

PAGE = 1000


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def finished_tasks(client: httpx.AsyncClient, since: datetime) -> list[dict[str, str]]:
    params: dict[str, str | int] = {
        "finished_at__gte": since.isoformat(),
        "limit": PAGE,
        "fields": "name,state,pulp_created,started_at,finished_at",
    }
    tasks: list[dict[str, str]] = []
    url: str | None = "/pulp/api/v3/tasks/"
    while url is not None:
        answer = await client.get(url, params=params if not tasks else None)
        answer.raise_for_status()
        page = answer.json()
        tasks.extend(page["results"])
        url = page["next"]
    return tasks


def summary(tasks: list[dict[str, str]]) -> list[str]:
    waits: dict[str, list[float]] = defaultdict(list)
    runs: dict[str, list[float]] = defaultdict(list)
    for task in tasks:
        name = task["name"].rsplit(".", 1)[-1]
        wait = seconds_between(task["pulp_created"], task["started_at"])
        run = seconds_between(task["started_at"], task["finished_at"])
        if wait is not None and run is not None:
            waits[name].append(wait)
            runs[name].append(run)
    lines = []
    for name in sorted(runs, key=lambda n: -sum(runs[n])):
        w, r = waits[name], runs[name]
        lines.append(
            f"{name:<28} {len(r):>5}  wait p50 {statistics.median(w):6.2f} s"
            f" p99 {quantile(w, 0.99):6.2f} s  run p50 {statistics.median(r):5.2f} s"
            f" p99 {quantile(r, 0.99):5.2f} s  worker-seconds {sum(r):7.1f}"
        )
    every = [x for r in runs.values() for x in r]
    if every:
        lines.append(
            f"{'all':<28} {len(every):>5}  run p50 {statistics.median(every):5.2f} s,"
            f" worker-seconds {sum(every):.1f}"
        )
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--since", help="ISO 8601 time with offset; overrides --minutes")
    args = parser.parse_args()
    since = (
        datetime.fromisoformat(args.since)
        if args.since
        else datetime.now(UTC) - timedelta(minutes=args.minutes)
    )
    auth = (os.environ.get("PULP_USER", "admin"), os.environ.get("PULP_PASSWORD", "admin"))
    base = os.environ.get("PULP_URL", "http://127.0.0.1:24817")
    async with httpx.AsyncClient(base_url=base, auth=auth, timeout=60) as client:
        tasks = await finished_tasks(client, since)
    print(f"{len(tasks)} Pulp tasks finished since {since.isoformat()}")
    for line in summary(tasks):
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
