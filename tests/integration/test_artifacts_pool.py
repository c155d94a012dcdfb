"""The warm pool on the real Pulp: a build's repositories and a task's log repository are
pool entries renamed to their wire names; an entry Pulp lost falls back to the slow way."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from faststream import FastStream
from sqlalchemy import func, select

from artifacts.pool import KINDS, WarmPool
from artifacts.pulp import PulpClient
from shared.contracts.build_node import BuildTaskFinished
from shared.db.models import PulpPoolEntry
from shared.db.session import SessionFactory
from tests.support.artifacts import (
    BuildMaker,
    EventLog,
    PlannedBuild,
    build_repositories,
    repo_content,
    running_artifacts,
)
from tests.support.events import EventBus
from tests.support.pulp_node import PulpServer, upload_artifact
from tests.support.servers import Servers
from tests.support.waiting import eventually

pytestmark = [pytest.mark.pulp]

API = "/pulp/api/v3"
# Exactly one x86_64 build's repositories (2 read by nodes + src) and one task's logs.
FULL = {("rpm", True): 2, ("rpm", False): 1, ("file", False): 1}
FILL_SECONDS = 120.0  # 5 Pulp tasks on the shared Pulp, beside the other tests' work


@pytest.fixture(scope="module")
async def pooled_service(
    service_env: dict[str, str],
    servers: Servers,
    amqp_prefix: str,
    pulp_server: PulpServer,
    sessions: SessionFactory,
) -> AsyncIterator[FastStream]:
    async with running_artifacts(
        service_env,
        servers,
        amqp_prefix,
        pulp_url=pulp_server.url,
        pulp_user=pulp_server.user,
        pulp_password=pulp_server.password,
        pulp_pool_rpm=2,
        pulp_pool_rpm_src=1,
        pulp_pool_logs=1,
        pulp_pool_check_seconds=0.5,
    ) as app:
        yield app
    # The service is stopped: what its pool holds goes from the shared Pulp.
    pulp = PulpClient(pulp_server.url, pulp_server.user, pulp_server.password)
    try:
        await WarmPool(pulp, sessions, dict.fromkeys(KINDS, 0)).drain()
    finally:
        await pulp.close()


async def ready(sessions: SessionFactory) -> dict[tuple[str, bool], list[str]]:
    async with sessions() as session:
        rows = await session.execute(
            select(PulpPoolEntry.kind, PulpPoolEntry.published, PulpPoolEntry.repo_href).where(
                PulpPoolEntry.repo_href.is_not(None), PulpPoolEntry.claimed_for.is_(None)
            )
        )
    found: dict[tuple[str, bool], list[str]] = {}
    for kind, published, href in rows:
        found.setdefault((kind, published), []).append(str(href))
    return found


async def full_pool(sessions: SessionFactory) -> dict[tuple[str, bool], list[str]]:
    async def probe() -> dict[tuple[str, bool], list[str]]:
        found = await ready(sessions)
        return found if {k: len(v) for k, v in found.items()} == FULL else {}

    return await eventually(probe, timeout=FILL_SECONDS, every=0.2)


async def built(build: PlannedBuild, bus: EventBus, events: EventLog) -> None:
    await bus.publish(build.created_event())
    await events.wait_for("build.repos_ready", build_id=build.build_id)


@pytest.mark.usefixtures("pooled_service")
async def test_a_build_and_its_task_logs_take_renamed_pool_entries(
    sessions: SessionFactory,
    module_bus: EventBus,
    event_log: EventLog,
    pulp_http: httpx.AsyncClient,
    make_build: BuildMaker,
    tmp_path: Path,
) -> None:
    pooled = await full_pool(sessions)
    build = await make_build("pool", ["x86_64"])
    await built(build, module_bus, event_log)

    rows = await build_repositories(sessions, build.build_id)
    assert {r.pulp_href for r in rows} == {
        *pooled[("rpm", True)],
        *pooled[("rpm", False)],
    }
    async with httpx.AsyncClient(timeout=30) as content:
        for row in rows:
            repo = (await pulp_http.get(str(row.pulp_href))).raise_for_status().json()
            assert repo["name"] == row.name  # the wire name (REFERENCE §5.1), not the pool's
            distros = await pulp_http.get(
                f"{API}/distributions/rpm/rpm/", params={"repository": row.pulp_href}
            )
            [distro] = distros.json()["results"]
            assert (distro["name"], distro["base_path"]) == (
                f"{row.name}-distro",
                f"builds/{row.name}",
            )
            assert row.url == distro["base_url"]
            repomd = await content.get(f"{row.url}repodata/repomd.xml")
            assert repomd.status_code == (404 if row.arch == "src" else 200)

    log = tmp_path / "mock.1.log"
    log.write_bytes(b"pooled log\n")
    href = await upload_artifact(pulp_http, log, chunk_size=4096)
    task_id = build.task_ids["x86_64"]
    report = BuildTaskFinished.model_validate(
        {
            "task_id": task_id,
            "build_id": build.build_id,
            "attempt": 1,
            "status": "done",
            "platform": build.platform,
            "arch": "x86_64",
            "artifacts": [{"name": log.name, "type": "build_log", "artifact_href": href}],
        }
    )
    await module_bus.publish(report)
    stored = await event_log.wait_for("build_task.artifacts_stored", task_id=task_id, attempt=1)
    assert stored["error"] is None
    name = f"{build.platform}-x86_64-{build.build_id}-artifacts-{task_id}"
    [log_repo] = [r for r in await build_repositories(sessions, build.build_id) if r.name == name]
    assert [log_repo.pulp_href] == pooled[("file", False)]
    version, units = await repo_content(pulp_http, str(log_repo.pulp_href), "file/files")
    assert (version, [u["relative_path"] for u in units]) == (1, [log.name])
    async with httpx.AsyncClient(timeout=30) as content:
        served = await content.get(f"{log_repo.url}{log.name}")
    assert served.content == b"pooled log\n"
    assert log_repo.url.endswith(f"/build_logs/{name}/")

    await full_pool(sessions)  # refilled in the background


@pytest.mark.usefixtures("pooled_service")
async def test_entries_pulp_lost_fall_back_to_making_the_repositories(
    sessions: SessionFactory,
    module_bus: EventBus,
    event_log: EventLog,
    pulp_http: httpx.AsyncClient,
    make_build: BuildMaker,
) -> None:
    lost = (await full_pool(sessions))[("rpm", True)]
    for href in lost:  # as after a restore of Pulp's database from before they were made
        (await pulp_http.delete(href)).raise_for_status()
    build = await make_build("lost", ["x86_64"])
    await built(build, module_bus, event_log)

    rows = await build_repositories(sessions, build.build_id)
    assert len(rows) == 3
    assert not {r.pulp_href for r in rows} & set(lost)
    for row in rows:
        repo = (await pulp_http.get(str(row.pulp_href))).raise_for_status().json()
        assert repo["name"] == row.name
    async with sessions() as session:
        left = await session.scalar(
            select(func.count()).select_from(PulpPoolEntry).where(PulpPoolEntry.repo_href.in_(lost))
        )
    assert left == 0
