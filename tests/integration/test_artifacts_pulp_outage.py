"""Pulp goes away while a report is being filed: filing waits, resumes and files it once.

The outage is a loopback TCP proxy between the service and the shared local Pulp, closed
(connections cut, new ones refused) and opened again; Pulp itself never stops.
"""

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream import FastStream

from shared.contracts.build_node import BuildTaskFinished, ReportedArtifact
from shared.db.session import SessionFactory
from tests.integration.test_artifacts_filing import (
    FILE_CONTENT,
    RPM_CONTENT,
    names,
    report,
    repos_by_name,
    rows_of,
    uploaded,
)
from tests.support.artifacts import BuildMaker, EventLog, repo_content, running_artifacts
from tests.support.events import EventBus
from tests.support.pulp_node import PulpServer
from tests.support.rpms import RpmFactory
from tests.support.servers import Servers
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.pulp

# The issue asks for 30 s; the mechanism (refused connections, cut connections, retries
# with backoff until a deadline) is the same for a shorter outage, which keeps the suite
# fast. ALBS_TEST_PULP_OUTAGE_SECONDS=30 runs the case, with the service's own
# retry settings (backoff up to 10 s, deadline 300 s) instead of the short ones below.
LONG_OUTAGE = os.environ.get("ALBS_TEST_PULP_OUTAGE_SECONDS")
OUTAGE_SECONDS = float(LONG_OUTAGE or 8.0)
SHORT_RETRIES: dict[str, Any] = {
    "pulp_retry_backoff_seconds": 0.2,
    "pulp_retry_max_delay_seconds": 1.0,
    "pulp_retry_deadline_seconds": 60,
}


@pytest.fixture(scope="module")
async def pulp_proxy(pulp_server: PulpServer) -> AsyncIterator[TcpProxy]:
    target = httpx.URL(pulp_server.url)
    proxy = TcpProxy(target.host, target.port or 80)
    await proxy.open()
    yield proxy
    await proxy.close()


@pytest.fixture(scope="module")
async def artifacts_behind_proxy(
    service_env: dict[str, str],
    servers: Servers,
    amqp_prefix: str,
    pulp_server: PulpServer,
    pulp_proxy: TcpProxy,
) -> AsyncIterator[FastStream]:
    async with running_artifacts(
        service_env,
        servers,
        amqp_prefix,
        pulp_url=pulp_proxy.url,
        pulp_user=pulp_server.user,
        pulp_password=pulp_server.password,
        pulp_timeout_seconds=5,
        **({} if LONG_OUTAGE else SHORT_RETRIES),
    ) as app:
        yield app


async def upload_report(
    pulp_http: httpx.AsyncClient, rpms: RpmFactory, tmp_path: Path
) -> list[ReportedArtifact]:
    packages = rpms(name="albs-outage", arch="x86_64")
    logs = {"mock_root.7.log": b"root log of the outage\n", "mock.7.cfg": b"outage cfg\n"}
    for name, body in logs.items():
        (tmp_path / name).write_bytes(body)
    artifacts = [await uploaded(pulp_http, path) for path in packages.all]
    return artifacts + [await uploaded(pulp_http, tmp_path / n, "build_log") for n in logs]


async def wait_for_traffic(proxy: TcpProxy, since: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while proxy.bytes_in == since:
        assert time.monotonic() < deadline, "the service never called Pulp for the report"
        await asyncio.sleep(0.005)


@pytest.mark.usefixtures("artifacts_behind_proxy")
async def test_filing_waits_out_a_pulp_outage_and_files_the_report_once(
    make_build: BuildMaker,
    module_bus: EventBus,
    event_log: EventLog,
    pulp_proxy: TcpProxy,
    pulp_http: httpx.AsyncClient,
    sessions: SessionFactory,
    rpms: RpmFactory,
    tmp_path: Path,
) -> None:
    build = await make_build("outage", ["x86_64"])
    await module_bus.publish(build.created_event())
    await event_log.wait_for("build.repos_ready", build_id=build.build_id)
    artifacts = await upload_report(pulp_http, rpms, tmp_path)
    event: BuildTaskFinished = report(build, "x86_64", 1, artifacts)

    before = pulp_proxy.bytes_in
    await module_bus.publish(event)
    await wait_for_traffic(pulp_proxy, before)  # filing has begun: now Pulp goes away
    await pulp_proxy.close()
    await asyncio.sleep(OUTAGE_SECONDS)
    # Nothing is stored meanwhile, so the scheduler keeps the dependents waiting.
    assert not event_log.of("build_task.artifacts_stored", task_id=event.task_id)
    await pulp_proxy.open()

    stored = await event_log.wait_for("build_task.artifacts_stored", task_id=event.task_id)
    assert stored["error"] is None
    rows = await rows_of(sessions, event.task_id, 1)
    assert [(r.name, r.artifact_href) for r in rows] == [
        (a.name, a.artifact_href) for a in artifacts
    ]
    repos = await repos_by_name(sessions, build.build_id)
    p, b = build.platform, build.build_id
    packages = rpms(name="albs-outage", arch="x86_64")
    expected = {
        f"{p}-src-{b}-br": {packages.src.name},
        f"{p}-x86_64-{b}-br": {packages.binary.name, packages.noarch.name},
        f"{p}-x86_64-{b}-debug-br": {packages.debuginfo.name},
    }
    for name, files in expected.items():
        version, units = await repo_content(pulp_http, str(repos[name].pulp_href), RPM_CONTENT)
        assert (version, names(units)) == (1, files), name  # filed once: one new version
    log_repo = repos[f"{p}-x86_64-{b}-artifacts-{event.task_id}"]
    version, units = await repo_content(pulp_http, str(log_repo.pulp_href), FILE_CONTENT)
    assert (version, names(units, "relative_path")) == (1, {"mock_root.7.log", "mock.7.cfg"})
    assert len(event_log.of("build_task.artifacts_stored", task_id=event.task_id)) == 1
