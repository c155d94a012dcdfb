"""Signing tests' shared setup: a gpg key, a platform, the people, a registered sign key and
builds finished through the real path (artifacts service, real RPMs in the real Pulp), and
the small steps the signing tests repeat (queue a task, sign it, wait for its status)."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from shared.db.base import utcnow
from shared.db.models import (
    Build,
    BuildArtifact,
    BuildTask,
    Repository,
    SignTask,
    SignTaskStatus,
    UserKind,
    build_repo,
)
from shared.db.session import SessionFactory, unit_of_work
from tests.support.artifacts import remove_pulp_repositories, unique_platform
from tests.support.builds import create_platform, get_task, platform_body, submit_build
from tests.support.pulp_node import PulpServer, upload_artifact
from tests.support.rpms import RpmFactory
from tests.support.sign_node import GpgKey, SignNode, gpg_keyring
from tests.support.stack import TokenMaker, bearer
from tests.support.waiting import eventually

ARCH = "riscv64"  # no other test builds it: a build node here claims only these builds' tasks
ARCH2 = "loongarch64"  # nor this one
KEYS = "/api/v1/sign-keys"
TASKS = "/api/v1/sign-tasks"
PULP_WAIT = 180.0
People = dict[str, dict[str, str]]
FinishedBuild = Callable[..., Awaitable[int]]


@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgKey]:
    with gpg_keyring(tmp_path_factory.mktemp("gnupg") / "home") as key:
        yield key


@pytest.fixture(scope="module")
async def sign_platform(pulp_server: PulpServer, run_id: str) -> AsyncIterator[str]:
    """The module's platform name; its builds' Pulp repositories are removed at the end."""
    name = unique_platform(run_id, "sign")
    yield name
    await remove_pulp_repositories(pulp_server, [f"{name}-"])


@pytest.fixture
async def people(api: httpx.AsyncClient, make_token: TokenMaker, sign_platform: str) -> People:
    admin = bearer(await make_token("sign-admin", admin=True))
    listed = (await api.get("/api/v1/platforms/", headers=admin)).json()
    if sign_platform not in {p["name"] for p in listed}:
        await create_platform(api, admin, platform_body(sign_platform, [ARCH, ARCH2]))
    return {
        "admin": admin,
        "owner": bearer(await make_token("sign-owner")),
        "other": bearer(await make_token("sign-other")),
        "node": bearer(await make_token("sign-build-node", kind=UserKind.NODE)),
        "signer": bearer(await make_token("signer-a", kind=UserKind.SIGN_NODE)),
        "signer_b": bearer(await make_token("signer-b", kind=UserKind.SIGN_NODE)),
    }


@pytest.fixture
async def sign_key(api: httpx.AsyncClient, people: People, gpg_key: GpgKey) -> dict[str, Any]:
    """The module's key, registered once (lower-case on purpose: stored upper-case)."""
    listed = (await api.get(f"{KEYS}/", headers=people["owner"])).json()
    found = [k for k in listed if k["keyid"] == gpg_key.keyid]
    if found:
        return dict(found[0])
    body = {
        "name": "test key",
        "description": "made by the test",
        "keyid": gpg_key.keyid.lower(),
        "fingerprint": gpg_key.fingerprint,
        "public_url": "http://keys.example.org/test.asc",
    }
    answer = await api.post(f"{KEYS}/new/", json=body, headers=people["admin"])
    assert answer.status_code == 200, answer.text
    key: dict[str, Any] = answer.json()
    return key


@pytest.fixture
def finished_build(
    api: httpx.AsyncClient,
    people: People,
    sign_platform: str,
    rpms: RpmFactory,
    pulp_http: httpx.AsyncClient,
    sessions: SessionFactory,
) -> FinishedBuild:
    """`await finished_build(label)`: a build through the real path: its repositories made
    by the artifacts service, its task built by a node that uploads real RPMs, filed, done."""

    async def make(
        label: str,
        *,
        with_rpms: bool = True,
        status: str = "done",
        arches: tuple[str, ...] = (ARCH,),
    ) -> int:
        body = {
            "platforms": [{"name": sign_platform, "arch_list": list(arches)}],
            "tasks": [{"url": f"https://g.example.org/{label}.git"}],
        }
        build_id = int((await submit_build(api, people["owner"], body))["id"])
        noarch: Path | None = None  # every arch files the first arch's noarch bytes
        for arch in arches:
            packages = rpms(name=f"albs-sign-{label}", arch=arch) if with_rpms else None
            files = [] if packages is None else packages.all
            if packages is not None and noarch is not None:
                files = [noarch if path == packages.noarch else path for path in files]
            noarch = noarch or (packages.noarch if packages is not None else None)
            hrefs = [await upload_artifact(pulp_http, path) for path in files]
            artifacts = [
                {"name": p.name, "type": "rpm", "href": h}
                for p, h in zip(files, hrefs, strict=True)
            ]
            await build_next_task(api, people["node"], arch, status, artifacts)

        async def finished() -> bool:
            async with sessions() as session:
                at = await session.scalar(select(Build.completed_at).where(Build.id == build_id))
            return at is not None

        await eventually(finished, timeout=PULP_WAIT, every=0.2)
        return build_id

    return make


async def build_next_task(
    api: httpx.AsyncClient,
    node_headers: dict[str, str],
    arch: str,
    status: str,
    artifacts: list[dict[str, str]],
) -> None:
    """The build node claims the next task of the arch (waiting for it) and reports it."""

    async def claimed() -> dict[str, Any] | None:
        return await get_task(api, node_headers, [arch])

    task = await eventually(claimed, timeout=PULP_WAIT, every=0.2)
    assert task is not None
    done = await api.post(
        "/api/v1/build_node/build_done",
        json={"task_id": task["id"], "status": status, "artifacts": artifacts},
        headers=node_headers,
    )
    assert done.status_code == 200, done.text


def node(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    pulp: httpx.AsyncClient,
    key: GpgKey,
    tmp_path: Path,
) -> SignNode:
    return SignNode(api, headers, pulp, key, tmp_path / uuid.uuid4().hex[:6])


async def create_task(
    api: httpx.AsyncClient, who: dict[str, str], build_id: int, key_id: int
) -> httpx.Response:
    return await api.post(
        f"{TASKS}/", json={"build_id": build_id, "sign_key_id": key_id}, headers=who
    )


async def queue_task(
    api: httpx.AsyncClient, who: dict[str, str], build_id: int, key_id: int
) -> dict[str, Any]:
    """A sign task that must be accepted; the task as the API shows it."""
    answer = await create_task(api, who, build_id, key_id)
    assert answer.status_code == 200, answer.text
    task: dict[str, Any] = answer.json()
    return task


async def sign_to_completion(
    api: httpx.AsyncClient,
    people: People,
    signer: SignNode,
    build_id: int,
    key_id: int,
    sessions: SessionFactory,
) -> dict[str, Any]:
    """The owner queues a task, the node claims, signs and reports it, and it completes;
    the task as the node got it."""
    queued = await queue_task(api, people["owner"], build_id, key_id)
    task = await signer.poll()
    assert task["id"] == queued["id"]
    assert len(await signer.report(task["id"], await signer.sign(task))) == 1
    await wait_status(sessions, task["id"], SignTaskStatus.COMPLETED)
    assert await is_signed(sessions, build_id)
    return task


async def tasks_of(api: httpx.AsyncClient, who: dict[str, str], build_id: int) -> list[Any]:
    answer = await api.get(f"{TASKS}/", params={"build_id": build_id}, headers=who)
    assert answer.status_code == 200, answer.text
    listed: list[Any] = answer.json()
    return listed


async def task_row(sessions: SessionFactory, task_id: int) -> SignTask:
    async with sessions() as session:
        row = await session.get(SignTask, task_id, populate_existing=True)
    assert row is not None
    return row


async def wait_status(sessions: SessionFactory, task_id: int, status: int) -> SignTask:
    async def reached() -> SignTask | None:
        row = await task_row(sessions, task_id)
        return row if row.status == status else None

    found = await eventually(reached, timeout=PULP_WAIT, every=0.1)
    assert found is not None
    return found


async def is_signed(sessions: SessionFactory, build_id: int) -> bool:
    async with sessions() as session:
        return bool(await session.scalar(select(Build.signed).where(Build.id == build_id)))


async def rpm_repos(sessions: SessionFactory, build_id: int) -> list[Repository]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Repository)
            .join(build_repo, build_repo.c.repository_id == Repository.id)
            .where(build_repo.c.build_id == build_id, Repository.type == "rpm")
            .order_by(Repository.name)
        )
        return list(rows)


async def artifact_hrefs(sessions: SessionFactory, build_id: int) -> dict[int, str | None]:
    async with sessions() as session:
        rows = await session.execute(
            select(BuildArtifact.id, BuildArtifact.href)
            .join(BuildTask, BuildTask.id == BuildArtifact.build_task_id)
            .where(BuildTask.build_id == build_id)
        )
        return {row[0]: row[1] for row in rows}


async def expire_sign_lease(sessions: SessionFactory, task_id: int) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(SignTask)
            .where(SignTask.id == task_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


async def cancel(api: httpx.AsyncClient, who: dict[str, str], task_id: int) -> httpx.Response:
    return await api.post(f"{TASKS}/{task_id}/cancel/", headers=who)
