"""The local Pulp for tests, and artifact uploads made exactly the way albs-node makes them.

albs-node (CLIENTS.md §2.2 step 3) reuses an artifact with the same sha256, else opens an
upload, PUTs the file in chunks as multipart `file` with a Content-Range header, commits
with the sha256 and polls the commit task; `created_resources[0]` is the artifact href.
The node sends basic auth on each request; the tests send the same requests through a
logged-in session, so that Pulp does not hash the password for every one of them.
"""

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from artifacts.settings import ArtifactsSettings
from tests.support.servers import reachable

API = "/pulp/api/v3"
NODE_CHUNK_SIZE = 8 * 1024 * 1024  # albs-node's default pulp_chunk_size


@dataclass(frozen=True)
class PulpServer:
    url: str
    user: str
    password: str

    def node_client(self, timeout: float = 30.0) -> httpx.AsyncClient:
        """Basic auth on every request, as albs-node does (bench/artifacts.py --basic-auth);
        the tests use a session instead."""
        return httpx.AsyncClient(
            base_url=self.url, auth=(self.user, self.password), timeout=timeout
        )

    @asynccontextmanager
    async def session_client(self, timeout: float = 30.0) -> AsyncIterator[httpx.AsyncClient]:
        """Logged in once: requests skip the password hash (PBKDF2, a million rounds in the
        local Pulp's Django: most of a second of CPU per basic-auth request)."""
        client = await self.open_session(timeout)
        try:
            yield client
        finally:
            await client.aclose()

    async def open_session(self, timeout: float = 30.0) -> httpx.AsyncClient:
        """A logged-in client (as `session_client`) that the caller closes."""
        client = httpx.AsyncClient(base_url=self.url, timeout=timeout)
        try:
            login = await client.post(f"{API}/login/", auth=(self.user, self.password))
            login.raise_for_status()
        except BaseException:
            await client.aclose()
            raise
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        return client


def local_pulp() -> PulpServer:
    """The Pulp at ALBS_PULP_URL (default: the one `scripts/pulp-local up` starts)."""
    settings = ArtifactsSettings()
    return PulpServer(
        settings.pulp_url, settings.pulp_user, settings.pulp_password.get_secret_value()
    )


@pytest.fixture(scope="session")
def pulp_server() -> PulpServer:
    """The local Pulp; its absence is a loud failure, never a skip."""
    server = local_pulp()
    parts = httpx.URL(server.url)
    if not reachable(parts.host, parts.port or 80):
        pytest.fail(
            f"Pulp is not reachable at {server.url}; start it with `scripts/pulp-local up`",
            pytrace=False,
        )
    status = httpx.get(f"{server.url}{API}/status/", timeout=10)
    if status.status_code != 200 or not status.json().get("online_workers"):
        pytest.fail(
            f"Pulp at {server.url} answers but is not healthy (no worker online?): "
            f"{status.status_code} {status.text[:200]}",
            pytrace=False,
        )
    return server


@pytest.fixture(scope="session")
async def pulp_http(pulp_server: PulpServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the local Pulp's API, to upload and to look: one logged-in session
    for the whole run (each basic-auth request or login costs Pulp a password hash)."""
    async with pulp_server.session_client(timeout=60) as client:
        yield client


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


async def wait_for_task(
    client: httpx.AsyncClient, task_href: str, *, timeout: float = 60.0
) -> dict[str, Any]:
    """Poll a Pulp task until it finished; fail on a failed task or after `timeout` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await client.get(task_href)
        if response.status_code >= 500 and loop.time() < deadline:
            await asyncio.sleep(0.2)  # the shared Pulp is briefly short of something: ask again
            continue
        response.raise_for_status()
        task: dict[str, Any] = response.json()
        if task["state"] == "completed":
            return task
        if task["state"] in ("failed", "canceled"):
            raise AssertionError(f"Pulp task {task_href} {task['state']}: {task.get('error')}")
        if loop.time() > deadline:
            raise AssertionError(f"Pulp task {task_href} still {task['state']} after {timeout} s")
        await asyncio.sleep(0.1)


async def find_artifact(client: httpx.AsyncClient, sha256: str) -> str | None:
    response = await client.get(f"{API}/artifacts/", params={"sha256": sha256})
    response.raise_for_status()
    results = response.json()["results"]
    return str(results[0]["pulp_href"]) if results else None


async def upload_artifact(
    client: httpx.AsyncClient, path: Path, *, chunk_size: int = NODE_CHUNK_SIZE
) -> str:
    """Upload `path` as albs-node does and return the Pulp artifact href."""
    sha256 = sha256_of(path)
    existing = await find_artifact(client, sha256)
    if existing is not None:
        return existing
    size = path.stat().st_size
    created = await client.post(f"{API}/uploads/", json={"size": size})
    created.raise_for_status()
    upload_href: str = created.json()["pulp_href"]
    with path.open("rb") as stream:
        offset = 0
        while chunk := stream.read(chunk_size):
            end = offset + len(chunk) - 1
            sent = await client.put(
                upload_href,
                files={"file": (path.name, chunk, "application/octet-stream")},
                headers={"Content-Range": f"bytes {offset}-{end}/{size}"},
            )
            sent.raise_for_status()
            offset = end + 1
    committed = await client.post(f"{upload_href}commit/", json={"sha256": sha256})
    committed.raise_for_status()
    task = await wait_for_task(client, committed.json()["task"])
    artifact_href: str = task["created_resources"][0]
    return artifact_href
