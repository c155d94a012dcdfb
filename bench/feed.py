"""Benchmark the build feed's search filters on a seeded scratch database (bench/README.md).

Seeds `--builds` builds in a new database (migrated to head, dropped at the end unless
`--keep`): 50 users, 3 platforms, one ref per build (5,000 projects), two tasks per build
(x86_64 and i686) and three packages per task (src, binary, debuginfo); 1 % of the
builds released, 5 % signed. Then runs the gateway's own feed query (page 1, 10 builds
and the total) `--repeat` times per filter and prints p50/p99 in milliseconds, one JSON
line per filter; `--explain` also prints each page query's EXPLAIN ANALYZE.
"""

import argparse
import asyncio
import json
import secrets
import statistics
import time
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from shared.db import migrate
from shared.db.models import Build
from shared.db.queries.builds import FeedFilters, feed_condition, list_builds
from shared.db.session import SessionFactory, create_engine, create_session_factory
from shared.settings import CommonSettings

FIRST_BUILD = 2500  # this helper's build-id offset; the scratch database never meets Pulp

SEED = [
    """INSERT INTO users (username, email)
       SELECT 'user' || i, 'user' || i || '@example.org' FROM generate_series(1, 50) i""",
    """INSERT INTO platforms (name, type, distr_type, distr_version, test_dist_name,
                              arch_list, data)
       SELECT 'Platform-' || i, 'rpm', 'rhel', '8', 'almalinux',
              '["x86_64", "i686"]', '{}' FROM generate_series(1, 3) i""",
    f"ALTER SEQUENCE builds_id_seq RESTART WITH {FIRST_BUILD}",
    """INSERT INTO builds (user_id, released, signed, ready)
       SELECT 1 + (i * 7) % 50, i % 100 = 0, i % 20 = 0, true
       FROM generate_series(1, :n) i""",
    """INSERT INTO build_task_refs (build_id, url, git_ref, ref_type)
       SELECT id, 'https://git.almalinux.org/rpms/pkg' || (id % 5000) || '.git',
              'imports/c8/pkg' || (id % 5000) || '-1.' || (id % 7) || '-' || id || '.el8', 2
       FROM builds""",
    """INSERT INTO build_tasks (build_id, platform_id, ref_id, status, index, arch, attempt)
       SELECT r.build_id, 1 + r.build_id % 3, r.id, 2, 0, a.arch, 1
       FROM build_task_refs r CROSS JOIN (VALUES ('x86_64'), ('i686')) a(arch)""",
    """INSERT INTO build_artifacts (build_task_id, attempt, name, type, artifact_href, href,
                                    rpm_name, rpm_epoch, rpm_version, rpm_release, rpm_arch)
       SELECT t.id, 1, 'pkg' || (t.build_id % 5000) || k.suffix || '.rpm', 'rpm', '/a/', '/c/',
              'pkg' || (t.build_id % 5000) || k.name_suffix, (t.build_id % 3),
              '1.' || (t.build_id % 7), t.build_id || '.el8',
              CASE WHEN k.src THEN 'src' ELSE t.arch END
       FROM build_tasks t CROSS JOIN (VALUES ('', '', true), ('', '.bin', false),
                                             ('-debuginfo', '.dbg', false))
            k(name_suffix, suffix, src)""",
    "ANALYZE",
]


def cases(n: int) -> dict[str, FeedFilters]:
    middle = FIRST_BUILD + n // 2
    return {
        "none": FeedFilters(),
        "created_by": FeedFilters(created_by=7),
        "created_by_unknown": FeedFilters(created_by=999_999),
        "project": FeedFilters(project="pkg4242.git"),
        "project_common": FeedFilters(project="rpms/pkg"),
        "ref": FeedFilters(ref=f"-{middle}.el8"),
        "rpm_name": FeedFilters(rpm_name="pkg4242"),
        "rpm_nevra": FeedFilters(
            rpm_name="pkg4242", rpm_epoch=0, rpm_version="1.2", rpm_release=f"{middle}.el8"
        ),
        "rpm_version": FeedFilters(rpm_version="1.3"),
        "rpm_release": FeedFilters(rpm_release=f"{middle}.el8"),
        "rpm_arch": FeedFilters(rpm_arch="src"),
        "rpm_epoch": FeedFilters(rpm_epoch=2),
        "platform_id": FeedFilters(platform_id=2),
        "build_task_arch": FeedFilters(build_task_arch="i686"),
        "build_task_arch_none": FeedFilters(build_task_arch="ppc64le"),
        "released": FeedFilters(released=True),
        "signed": FeedFilters(signed=True),
        "not_signed": FeedFilters(signed=False),
        "combined": FeedFilters(created_by=7, platform_id=2, build_task_arch="x86_64"),
        "rpm_name_unknown": FeedFilters(rpm_name="no-such-package"),
    }


async def seed(sessions: SessionFactory, n: int) -> float:
    started = time.monotonic()
    async with sessions() as session:
        await session.execute(text("SET LOCAL statement_timeout = 0"))  # a bulk load
        for statement in SEED:
            await session.execute(text(statement), {"n": n} if ":n" in statement else {})
        await session.commit()
    return time.monotonic() - started


async def measure(sessions: SessionFactory, filters: FeedFilters, repeat: int) -> list[float]:
    timings = []
    async with sessions() as session:
        for _ in range(repeat):
            started = time.perf_counter()
            await list_builds(session, page=1, page_size=10, filters=filters)
            timings.append((time.perf_counter() - started) * 1000)
            session.expunge_all()
    return timings


async def explain(sessions: SessionFactory, filters: FeedFilters) -> str:
    """The plans of the page's ids and of the total, as the feed sends them."""
    condition = feed_condition(filters)
    page = select(Build.id).where(condition).order_by(Build.id.desc()).limit(10)
    total = select(func.count()).select_from(Build).where(condition)
    plans = []
    async with sessions() as session:
        dialect = session.get_bind().dialect
        for query in (page, total):
            sql = query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
            rows = await session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}"))
            plans.append("\n".join(row[0] for row in rows))
    return "\n".join(plans)


def summary(name: str, timings: list[float]) -> dict[str, Any]:
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    return {"filter": name, "n": len(timings), "p50_ms": round(cuts[49], 2),
            "p99_ms": round(cuts[98], 2)}  # fmt: skip


async def run(args: argparse.Namespace) -> None:
    settings = CommonSettings()
    url = make_url(settings.database_url).set(database=f"albs_bench_feed_{secrets.token_hex(3)}")
    database_url = url.render_as_string(hide_password=False)
    await migrate.create_database(database_url)
    engine = create_engine(database_url, pool_size=1)
    try:
        await asyncio.to_thread(migrate.upgrade, database_url)
        sessions = create_session_factory(engine)
        seconds = await seed(sessions, args.builds)
        print(json.dumps({"seeded_builds": args.builds, "seconds": round(seconds, 1)}))
        for name, filters in cases(args.builds).items():
            if args.only and name not in args.only:
                continue
            await measure(sessions, filters, 2)  # warm the cache
            print(json.dumps(summary(name, await measure(sessions, filters, args.repeat))))
            if args.explain:
                print(await explain(sessions, filters))
    finally:
        await engine.dispose()
        if args.keep:
            print(f"kept {database_url}")
        else:
            await migrate.drop_database(database_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--only", nargs="*", help="filter names to run (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
