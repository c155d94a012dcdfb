"""The Pulp client's guarantees, on the real local Pulp: idempotent steps, bounds, retries."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from artifacts.pulp import LOG_REPO, RPM_REPO, PulpClient, PulpError
from artifacts.pulp_api import LOGIN, RetryPolicy, TaskPolicy
from tests.support.processes import free_port
from tests.support.pulp_node import PulpServer, upload_artifact

pytestmark = pytest.mark.pulp


@pytest.fixture
async def pulp(pulp_server: PulpServer) -> AsyncIterator[PulpClient]:
    client = PulpClient(pulp_server.url, pulp_server.user, pulp_server.password)
    await client.start()
    yield client
    await client.close()


async def test_concurrent_creations_of_one_repository_make_one(
    pulp: PulpClient, pulp_http: httpx.AsyncClient, run_id: str
) -> None:
    name = f"T{run_id}-client-{uuid.uuid4().hex[:6]}"
    made = await asyncio.gather(
        *(pulp.ensure_repository(LOG_REPO, name, publish=False) for _ in range(3))
    )
    try:
        assert len({(repo.href, repo.base_url) for repo in made}) == 1
        assert made[0].base_url.endswith(f"/build_logs/{name}/")
        listed = await pulp_http.get("/pulp/api/v3/repositories/file/file/", params={"name": name})
        assert listed.json()["count"] == 1
    finally:
        await pulp.delete_repository(made[0].href)
    await pulp.delete_repository(made[0].href)  # already gone is fine
    gone = await pulp_http.get(
        "/pulp/api/v3/distributions/file/file/", params={"name": f"{name}-distro"}
    )
    assert gone.json()["count"] == 0


async def test_the_same_artifact_makes_the_same_content_every_time(
    pulp: PulpClient, pulp_http: httpx.AsyncClient, tmp_path: Path
) -> None:
    log = tmp_path / "albs.1.log"
    log.write_bytes(f"log {uuid.uuid4()}\n".encode())
    artifact = await upload_artifact(pulp_http, log)
    first = await pulp.ensure_file(artifact, log.name)
    assert await pulp.ensure_file(artifact, log.name) == first
    assert await pulp.ensure_file(artifact, "copy.log") != first  # same file, another name


async def test_a_dropped_session_is_renewed_without_failing_the_call(pulp: PulpClient) -> None:
    await pulp.get("/pulp/api/v3/status/")
    logged_out = await pulp._call("DELETE", LOGIN)  # as if the session had expired
    assert logged_out.status_code == 204
    status = await pulp.get("/pulp/api/v3/repositories/rpm/rpm/", limit=1)
    assert "results" in status


async def test_an_unreachable_pulp_fails_the_step_after_the_retries(run_id: str) -> None:
    nowhere = PulpClient(
        f"http://127.0.0.1:{free_port()}",
        "admin",
        "admin",
        timeout_seconds=2,
        retry=RetryPolicy(retries=2, backoff_seconds=0.01, deadline_seconds=30),
    )
    with pytest.raises(PulpError, match=r"unavailable after 3 attempts .*ConnectError"):
        await nowhere.ensure_repository(RPM_REPO, f"T{run_id}-nowhere", publish=True)
    await nowhere.close()


async def test_a_pulp_task_that_outlives_its_bound_is_an_error(
    pulp_server: PulpServer, pulp: PulpClient, pulp_http: httpx.AsyncClient, run_id: str
) -> None:
    impatient = PulpClient(
        pulp_server.url,
        pulp_server.user,
        pulp_server.password,
        tasks=TaskPolicy(poll_seconds=0.01, timeout_seconds=0.001),
    )
    name = f"T{run_id}-impatient-{uuid.uuid4().hex[:6]}"
    busy = await pulp.ensure_repository(RPM_REPO, f"{name}-busy", publish=False)
    try:
        # Publications queued first keep Pulp's worker busy, so the one the impatient client
        # asks for cannot be done by its first look at the task.
        for _ in range(3):
            queued = await pulp_http.post(
                "/pulp/api/v3/publications/rpm/rpm/", json={"repository": busy.href}
            )
            queued.raise_for_status()
        with pytest.raises(
            PulpError, match=r"task (publish|general_create) .* did not finish within 0\.001 s"
        ):
            await impatient.ensure_repository(RPM_REPO, name, publish=True)
    finally:
        await impatient.close()
        await pulp.delete_repository_named(RPM_REPO, name)
        await pulp.delete_repository(busy.href)
