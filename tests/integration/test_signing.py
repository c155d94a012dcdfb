"""Signing end to end on the real servers and the real Pulp: real RPMs (rpmbuild), a real
gpg key and rpmsign, a simulated Sign Node speaking albs-sign-node's protocol, and the build's
repositories serving the signed files afterwards (SIGNING.md §7)."""

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from artifacts.pulp import LOG_REPO, RPM_REPO, PulpClient
from scheduler.leases import requeue_expired_sign_tasks
from scheduler.reaper import Reaper
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
from tests.support.artifacts import repo_content, served_packages, unique_platform
from tests.support.builds import create_platform, platform_body, submit_build
from tests.support.events import EventTap
from tests.support.pulp_node import PulpServer, upload_artifact
from tests.support.rpms import RpmFactory
from tests.support.sign_node import GpgKey, SignNode, make_gpg_key, signature_key
from tests.support.stack import TokenMaker, bearer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.pulp, pytest.mark.usefixtures("artifacts_service")]

ARCH = "riscv64"  # no other test builds it: a build node here claims only these builds' tasks
ARCH2 = "loongarch64"  # nor this one
KEYS = "/api/v1/sign-keys"
TASKS = "/api/v1/sign-tasks"
PULP_WAIT = 180.0


@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> GpgKey:
    return make_gpg_key(tmp_path_factory.mktemp("gnupg") / "home")


@pytest.fixture(scope="module")
async def platform(pulp_server: PulpServer, run_id: str) -> AsyncIterator[str]:
    """This module's platform name; its builds' Pulp repositories are removed at the end."""
    name = unique_platform(run_id, "sign")
    yield name
    pulp = PulpClient(pulp_server.url, pulp_server.user, pulp_server.password)
    hrefs: list[str] = []
    for kind in (RPM_REPO, LOG_REPO):
        repos = await pulp.get(kind.repositories, name__startswith=f"{name}-", limit=100)
        hrefs += [repo["pulp_href"] for repo in repos["results"]]
    await asyncio.gather(*(pulp.delete_repository(href) for href in hrefs))
    await pulp.close()


@pytest.fixture
async def people(
    api: httpx.AsyncClient, make_token: TokenMaker, platform: str
) -> dict[str, dict[str, str]]:
    admin = bearer(await make_token("sign-admin", admin=True))
    listed = (await api.get("/api/v1/platforms/", headers=admin)).json()
    if platform not in {p["name"] for p in listed}:
        await create_platform(api, admin, platform_body(platform, [ARCH, ARCH2]))
    return {
        "admin": admin,
        "owner": bearer(await make_token("sign-owner")),
        "other": bearer(await make_token("sign-other")),
        "node": bearer(await make_token("sign-build-node", kind=UserKind.NODE)),
        "signer": bearer(await make_token("signer-a", kind=UserKind.SIGN_NODE)),
        "signer_b": bearer(await make_token("signer-b", kind=UserKind.SIGN_NODE)),
    }


@pytest.fixture
async def sign_key(
    api: httpx.AsyncClient, people: dict[str, dict[str, str]], gpg_key: GpgKey
) -> dict[str, Any]:
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


FinishedBuild = Callable[..., Awaitable[int]]


@pytest.fixture
def finished_build(
    api: httpx.AsyncClient,
    people: dict[str, dict[str, str]],
    platform: str,
    rpms: RpmFactory,
    pulp_server: PulpServer,
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
            "platforms": [{"name": platform, "arch_list": list(arches)}],
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
            await build_task_done(arch, files, status)

        async def finished() -> bool:
            async with sessions() as session:
                at = await session.scalar(select(Build.completed_at).where(Build.id == build_id))
            return at is not None

        await eventually(finished, timeout=PULP_WAIT, every=0.3)
        return build_id

    async def build_task_done(arch: str, files: list[Path], status: str) -> None:
        async def claimed() -> dict[str, Any] | None:
            answer = await api.request(
                "GET",
                "/api/v1/build_node/get_task",
                json={"supported_arches": [arch]},
                headers=people["node"],
            )
            task: dict[str, Any] | None = answer.json()
            return task

        task = await eventually(claimed, timeout=PULP_WAIT, every=0.3)
        assert task is not None
        artifacts = []
        async with pulp_server.node_client() as client:
            for path in files:
                href = await upload_artifact(client, path)
                artifacts.append({"name": path.name, "type": "rpm", "href": href})
        done = await api.post(
            "/api/v1/build_node/build_done",
            json={"task_id": task["id"], "status": status, "artifacts": artifacts},
            headers=people["node"],
        )
        assert done.status_code == 200, done.text

    return make


def node(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    pulp: PulpServer,
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

    found = await eventually(reached, timeout=PULP_WAIT, every=0.2)
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


async def test_a_build_is_signed_after_a_failed_attempt_and_its_repositories_serve_the_signed_files(
    api: httpx.AsyncClient,
    people: dict[str, dict[str, str]],
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_server: PulpServer,
    pulp_http: httpx.AsyncClient,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    build_id = await finished_build("flow")
    assert sign_key["keyid"] == gpg_key.keyid
    assert "fingerprint" not in sign_key
    signer = node(api, people["signer"], pulp_server, gpg_key, tmp_path)
    assert await signer.poll(["0000000000000000"]) == {}  # a key nobody uses

    # First attempt: the node fails; the failure is shown and a Re-sign is allowed.
    created = await queue_task(api, people["owner"], build_id, sign_key["id"])
    assert created["status"] == SignTaskStatus.IDLE
    assert created["sign_key"] == sign_key
    again = await create_task(api, people["owner"], build_id, sign_key["id"])
    assert again.status_code == 409, again.text
    first = await signer.poll()
    assert first["id"] == created["id"]
    failure = {"build_id": build_id, "success": False, "error_message": "Traceback: no agent"}
    answer = await signer.complete(first["id"], failure)
    assert (answer.status_code, answer.json()) == (200, {"success": True})
    assert (await signer.complete(first["id"], failure)).json() == {"success": True}
    listed = await tasks_of(api, people["owner"], build_id)
    assert [(t["status"], t["error_message"]) for t in listed] == [
        (SignTaskStatus.FAILED, "Traceback: no agent")
    ]
    assert not await is_signed(sessions, build_id)

    # Re-sign: claimed, signed with rpmsign, uploaded in chunks, completed.
    retry = await queue_task(api, people["owner"], build_id, sign_key["id"])
    task = await signer.poll()
    assert await signer.poll() == {}  # nothing else waits for this key
    assert (task["id"], task["build_id"], task["keyid"]) == (
        retry["id"],
        build_id,
        gpg_key.keyid,
    )
    packages = task["packages"]
    assert next(p["arch"] for p in packages) == "src"
    assert all(
        p["type"] == "rpm" and set(p) == {"id", "name", "arch", "type", "download_url"}
        for p in packages
    )
    assert len({p["id"] for p in packages}) == len(packages) == 4
    debuginfo = next(p for p in packages if "-debuginfo-" in p["name"])
    assert f"-{ARCH}-{build_id}-debug-br/Packages/a/" in debuginfo["download_url"]
    async with sessions() as session:
        old_hrefs = dict(
            (
                await session.execute(
                    select(BuildArtifact.id, BuildArtifact.href).where(
                        BuildArtifact.id.in_([p["id"] for p in packages])
                    )
                )
            ).all()
        )
    report = await signer.sign(task)
    answer = await signer.complete(task["id"], report)
    assert (answer.status_code, answer.json()) == (200, {"success": True})
    repeat = await signer.complete(task["id"], report)  # the node's retry: the same answer
    assert (repeat.status_code, repeat.json()) == (200, {"success": True})

    await wait_status(sessions, task["id"], SignTaskStatus.COMPLETED)
    assert await is_signed(sessions, build_id)
    view = (await api.get(f"/api/v1/builds/{build_id}/", headers=people["owner"])).json()
    assert view["signed"] is True
    for wanted, present in (("true", True), ("false", False)):
        page = await api.get(
            "/api/v1/builds/",
            params={"pageNumber": 1, "page_size": 100, "signed": wanted},
            headers=people["owner"],
        )
        assert (build_id in [b["id"] for b in page.json()["builds"]]) is present
    contradicting = await signer.complete(task["id"], failure)
    assert contradicting.status_code == 409, contradicting.text
    assert await is_signed(sessions, build_id)
    signed_again = await create_task(api, people["owner"], build_id, sign_key["id"])
    assert signed_again.status_code == 409
    assert "already signed" in signed_again.json()["detail"]

    # The repositories serve exactly the signed files; the rows point at the signed content.
    signed = signer.signed_checksums()
    served: dict[str, bytes] = {}
    for repo in await rpm_repos(sessions, build_id):
        served.update(await served_packages(repo.url))
        _, units = await repo_content(pulp_http, repo.pulp_href or "", "rpm/packages")
        assert {u["pkgId"] for u in units} <= signed
    assert {hashlib.sha256(body).hexdigest() for body in served.values()} == signed
    assert set(served) == {p["name"] for p in packages}
    for name, body in served.items():
        path = tmp_path / f"served-{name}"
        path.write_bytes(body)
        assert signature_key(path) == gpg_key.keyid[-8:].lower()
    async with sessions() as session:
        new_hrefs = dict(
            (
                await session.execute(
                    select(BuildArtifact.id, BuildArtifact.href).where(
                        BuildArtifact.id.in_(list(old_hrefs))
                    )
                )
            ).all()
        )
    assert all(new_hrefs[i] and new_hrefs[i] != old_hrefs[i] for i in old_hrefs)


async def expire_sign_lease(sessions: SessionFactory, task_id: int) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(SignTask)
            .where(SignTask.id == task_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


async def test_an_abandoned_task_is_requeued_after_its_lease_and_the_lost_holder_is_refused(
    api: httpx.AsyncClient,
    people: dict[str, dict[str, str]],
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_server: PulpServer,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    build_id = await finished_build("lease")
    created = await queue_task(api, people["owner"], build_id, sign_key["id"])
    a = node(api, people["signer"], pulp_server, gpg_key, tmp_path)
    b = node(api, people["signer_b"], pulp_server, gpg_key, tmp_path)

    # Two sign nodes, five polls each at once: exactly one poll gets the task.
    answers = await asyncio.gather(*(n.poll() for n in (a, b) * 5))
    claimed = [answer for answer in answers if answer]
    assert len(claimed) == 1
    assert claimed[0]["id"] == created["id"]
    holder, other = (a, b) if answers.index(claimed[0]) % 2 == 0 else (b, a)
    task = claimed[0]

    # While it is being signed the build can be neither deleted nor restarted.
    removed = await api.delete(f"/api/v1/builds/{build_id}/remove", headers=people["owner"])
    assert removed.status_code == 409, removed.text
    restarted = await api.patch(
        f"/api/v1/builds/{build_id}/restart-failed", headers=people["owner"]
    )
    assert restarted.status_code == 409, restarted.text

    await expire_sign_lease(sessions, task["id"])
    await Reaper(sessions, 1).reap_once()
    row = await task_row(sessions, task["id"])
    assert (row.status, row.attempt) == (SignTaskStatus.IDLE, 1)

    again = await other.poll()
    assert again["id"] == task["id"]
    assert again["packages"] == task["packages"]  # frozen at the first claim
    report = await other.sign(again)
    late = await holder.complete(task["id"], report)
    assert late.status_code == 409, late.text
    assert "not held by" in late.json()["detail"]
    done = await other.complete(task["id"], report)
    assert (done.status_code, done.json()) == (200, {"success": True})
    completed = await wait_status(sessions, task["id"], SignTaskStatus.COMPLETED)
    assert completed.attempt == 2
    assert await is_signed(sessions, build_id)


async def test_a_task_with_nothing_left_to_sign_fails_visibly(
    api: httpx.AsyncClient,
    people: dict[str, dict[str, str]],
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_server: PulpServer,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    empty = await finished_build("norpms", with_rpms=False)
    refused = await create_task(api, people["owner"], empty, sign_key["id"])
    assert refused.status_code == 409
    assert "no source and binary" in refused.json()["detail"]

    build_id = await finished_build("vanished")
    signer = node(api, people["signer"], pulp_server, gpg_key, tmp_path)
    await queue_task(api, people["owner"], build_id, sign_key["id"])
    task = await signer.poll()
    await expire_sign_lease(sessions, task["id"])  # its last attempt's lease ran out
    async with unit_of_work(sessions) as session:
        assert await requeue_expired_sign_tasks(session, max_attempts=1) >= 1
    row = await task_row(sessions, task["id"])
    assert row.status == SignTaskStatus.FAILED
    assert row.error_message
    assert "did not report within its lease" in row.error_message
    late = await signer.complete(task["id"], {"build_id": build_id, "success": False})
    assert late.status_code == 409, late.text

    created = await queue_task(api, people["owner"], build_id, sign_key["id"])
    async with unit_of_work(sessions) as session:  # as if its repositories had lost them all
        tasks = select(BuildTask.id).where(BuildTask.build_id == build_id)
        await session.execute(
            update(BuildArtifact).where(BuildArtifact.build_task_id.in_(tasks)).values(href=None)
        )
    assert await signer.poll() == {}
    row = await task_row(sessions, created["id"])
    assert row.status == SignTaskStatus.FAILED
    assert row.error_message
    assert "no RPMs" in row.error_message


async def test_keys_are_validated_and_duplicates_are_conflicts(
    api: httpx.AsyncClient, people: dict[str, dict[str, str]], sign_key: dict[str, Any]
) -> None:
    fingerprint = uuid.uuid4().hex[:24].upper() + "ABCDEF0123456789"
    body = {
        "name": "second",
        "description": "",
        "keyid": "ABCDEF0123456789",
        "fingerprint": fingerprint,
        "public_url": "http://keys.example.org/2.asc",
    }
    listed = (await api.get(f"{KEYS}/", headers=people["admin"])).json()
    existing = next((k for k in listed if k["keyid"] == body["keyid"]), None)
    if existing is None:
        answer = await api.post(f"{KEYS}/new/", json=body, headers=people["admin"])
        assert answer.status_code == 200, answer.text
        existing = answer.json()
    duplicate = await api.post(f"{KEYS}/new/", json=body, headers=people["admin"])
    assert duplicate.status_code == 409, duplicate.text
    mismatch = {**body, "keyid": "FFFFFFFFFFFFFFFF"}
    refused = await api.post(f"{KEYS}/new/", json=mismatch, headers=people["admin"])
    assert refused.status_code == 422, refused.text
    bad_hex = await api.post(f"{KEYS}/new/", json={**body, "keyid": "XYZ"}, headers=people["admin"])
    assert bad_hex.status_code == 422
    not_admin = await api.post(f"{KEYS}/new/", json=body, headers=people["owner"])
    assert not_admin.status_code == 403

    renamed = await api.put(
        f"{KEYS}/{existing['id']}/", json={"name": "renamed"}, headers=people["admin"]
    )
    assert renamed.status_code == 200, renamed.text
    assert {**renamed.json(), "name": existing["name"]} == existing  # only the name changed
    clash = await api.put(
        f"{KEYS}/{existing['id']}/",
        json={"keyid": sign_key["keyid"]},
        headers=people["admin"],
    )
    assert clash.status_code in (409, 422), clash.text  # another key's id; not its fingerprint
    missing = await api.put(f"{KEYS}/999999/", json={"name": "x"}, headers=people["admin"])
    assert missing.status_code == 404


async def test_task_creation_refusals(
    api: httpx.AsyncClient,
    people: dict[str, dict[str, str]],
    sign_key: dict[str, Any],
    platform: str,
) -> None:
    unknown = await create_task(api, people["owner"], 999_999_999, sign_key["id"])
    assert unknown.status_code == 404, unknown.text
    body = {
        "platforms": [{"name": platform, "arch_list": [ARCH]}],
        "tasks": [{"url": "https://g.example.org/unfinished.git"}],
    }
    build_id = int((await submit_build(api, people["owner"], body))["id"])
    unfinished = await create_task(api, people["owner"], build_id, sign_key["id"])
    assert unfinished.status_code == 409
    assert "not finished" in unfinished.json()["detail"]
    no_key = await create_task(api, people["owner"], build_id, 999_999)
    assert no_key.status_code == 404
    not_owner = await create_task(api, people["other"], build_id, sign_key["id"])
    assert not_owner.status_code == 403
    removed = await api.delete(f"/api/v1/builds/{build_id}/remove", headers=people["owner"])
    assert removed.status_code in (200, 204), removed.text


async def test_only_sign_nodes_may_claim_and_complete_and_they_may_do_nothing_else(
    api: httpx.AsyncClient, people: dict[str, dict[str, str]]
) -> None:
    for who in ("admin", "owner", "node"):
        claim = await api.post(f"{TASKS}/get_sign_task/", json={"key_ids": []}, headers=people[who])
        assert claim.status_code == 403, (who, claim.text)
        complete = await api.post(
            f"{TASKS}/1/complete/", json={"build_id": 1, "success": False}, headers=people[who]
        )
        assert complete.status_code == 403, (who, complete.text)
    signer = people["signer"]
    assert (
        await api.post(f"{TASKS}/", json={"build_id": 1, "sign_key_id": 1}, headers=signer)
    ).status_code == 403
    assert (await api.get(f"{KEYS}/", headers=signer)).status_code == 403
    assert (await api.get("/api/v1/builds/", headers=signer)).status_code == 403
    get_task = await api.request(
        "GET", "/api/v1/build_node/get_task", json={"supported_arches": [ARCH]}, headers=signer
    )
    assert get_task.status_code == 403
    unknown = await api.post(
        f"{TASKS}/999999/complete/", json={"build_id": 1, "success": False}, headers=signer
    )
    assert unknown.status_code == 404


async def test_a_swap_pulp_refuses_fails_the_task_and_a_restart_after_signing_unsigns_the_build(
    api: httpx.AsyncClient,
    people: dict[str, dict[str, str]],
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_server: PulpServer,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    build_id = await finished_build("restart", status="failed")  # failed, with its RPMs
    signer = node(api, people["signer"], pulp_server, gpg_key, tmp_path)
    await queue_task(api, people["owner"], build_id, sign_key["id"])
    task = await signer.poll()
    bogus = {
        "build_id": build_id,
        "success": True,
        "packages": [
            {**p, "href": f"/pulp/api/v3/artifacts/{uuid.uuid4()}/"} for p in task["packages"]
        ],
    }
    accepted = await signer.complete(task["id"], bogus)
    assert (accepted.status_code, accepted.json()) == (200, {"success": True})
    failed = await wait_status(sessions, task["id"], SignTaskStatus.FAILED)
    assert failed.error_message
    assert "could not be put in place" in failed.error_message
    assert (await signer.complete(task["id"], bogus)).json() == {"success": True}  # same report
    assert not await is_signed(sessions, build_id)

    await queue_task(api, people["owner"], build_id, sign_key["id"])
    task = await signer.poll()
    done = await signer.complete(task["id"], await signer.sign(task))
    assert done.status_code == 200, done.text
    await wait_status(sessions, task["id"], SignTaskStatus.COMPLETED)
    assert await is_signed(sessions, build_id)

    restarted = await api.patch(
        f"/api/v1/builds/{build_id}/restart-failed", headers=people["owner"]
    )
    assert restarted.status_code in (200, 204), restarted.text
    assert not await is_signed(sessions, build_id)  # the rebuilt packages need signing again
    # Leave no idle task of this arch behind for the other tests' build node.
    rebuilt = await api.request(
        "GET",
        "/api/v1/build_node/get_task",
        json={"supported_arches": [ARCH]},
        headers=people["node"],
    )
    assert rebuilt.status_code == 200
    assert rebuilt.json() is not None
    ended = await api.post(
        "/api/v1/build_node/build_done",
        json={"task_id": rebuilt.json()["id"], "status": "failed", "artifacts": []},
        headers=people["node"],
    )
    assert ended.status_code == 200, ended.text


async def test_files_signed_with_another_key_fail_the_task_and_change_nothing(
    api: httpx.AsyncClient,
    people: dict[str, dict[str, str]],
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_server: PulpServer,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    """SIGNING.md §5.12: the server checks what Pulp read from each file's signatures."""
    build_id = await finished_build("impostor")
    other_key = make_gpg_key(tmp_path / "other-gnupg", name="Not The Registered Key")
    impostor = node(api, people["signer"], pulp_server, other_key, tmp_path)
    created = await queue_task(api, people["owner"], build_id, sign_key["id"])
    task = await impostor.poll([gpg_key.keyid])
    assert task["id"] == created["id"]
    before = await artifact_hrefs(sessions, build_id)
    report = await impostor.sign(task)
    answer = await impostor.complete(task["id"], report)
    assert (answer.status_code, answer.json()) == (200, {"success": True})

    row = await wait_status(sessions, task["id"], SignTaskStatus.FAILED)
    assert row.error_message
    assert f"no signature by key {gpg_key.keyid}" in row.error_message
    assert not await is_signed(sessions, build_id)
    assert await artifact_hrefs(sessions, build_id) == before  # nothing was swapped


async def artifact_hrefs(sessions: SessionFactory, build_id: int) -> dict[int, str | None]:
    async with sessions() as session:
        rows = await session.execute(
            select(BuildArtifact.id, BuildArtifact.href)
            .join(BuildTask, BuildTask.id == BuildArtifact.build_task_id)
            .where(BuildTask.build_id == build_id)
        )
        return {row[0]: row[1] for row in rows}


async def cancel(api: httpx.AsyncClient, who: dict[str, str], task_id: int) -> httpx.Response:
    return await api.post(f"{TASKS}/{task_id}/cancel/", headers=who)


async def test_a_waiting_or_claimed_task_is_canceled_and_the_build_can_be_signed_again(
    api: httpx.AsyncClient,
    people: dict[str, dict[str, str]],
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_server: PulpServer,
    sessions: SessionFactory,
    event_tap: EventTap,
    tmp_path: Path,
) -> None:
    """SIGNING.md §5.2: an explicit cancel; the holder's late report changes nothing and the
    node's follow-up failure report (§4.6) is answered so that the node keeps running."""
    build_id = await finished_build("cancel")
    signer = node(api, people["signer"], pulp_server, gpg_key, tmp_path)
    waiting = await queue_task(api, people["owner"], build_id, sign_key["id"])
    assert (await cancel(api, people["other"], waiting["id"])).status_code == 403
    assert (await cancel(api, people["signer"], waiting["id"])).status_code == 403
    assert (await cancel(api, people["owner"], 999_999)).status_code == 404
    canceled = await cancel(api, people["owner"], waiting["id"])
    assert canceled.status_code == 200, canceled.text
    assert canceled.json() == {
        **waiting,
        "status": SignTaskStatus.FAILED,
        "error_message": "Canceled by sign-owner.",
    }
    assert await signer.poll() == {}  # a canceled task is never handed out
    again = await cancel(api, people["owner"], waiting["id"])
    assert again.status_code == 409
    assert "already finished" in again.json()["detail"]

    # Re-sign; an administrator cancels it while the node holds it.
    claimed = await queue_task(api, people["owner"], build_id, sign_key["id"])
    task = await signer.poll()
    assert task["id"] == claimed["id"]
    before = await artifact_hrefs(sessions, build_id)
    by_admin = await cancel(api, people["admin"], task["id"])
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json()["error_message"] == "Canceled by sign-admin."
    late, follow_up = await signer.report(task["id"], await signer.sign(task))
    assert late.status_code == 409, late.text
    assert "canceled by sign-admin" in late.json()["detail"]
    assert (follow_up.status_code, follow_up.json()) == (200, {"success": True})
    row = await task_row(sessions, task["id"])
    assert (row.status, row.error_message) == (SignTaskStatus.FAILED, "Canceled by sign-admin.")
    assert not await is_signed(sessions, build_id)
    assert await artifact_hrefs(sessions, build_id) == before  # nothing was swapped
    failed = await event_tap.settled("sign_task.failed", 2)
    assert [(e["task_id"], e["error"]) for e in failed] == [
        (waiting["id"], "Canceled by sign-owner."),
        (task["id"], "Canceled by sign-admin."),
    ]

    # Signed after all; a finished task cannot be canceled.
    final = await queue_task(api, people["owner"], build_id, sign_key["id"])
    task = await signer.poll()
    assert task["id"] == final["id"]
    assert len(await signer.report(task["id"], await signer.sign(task))) == 1
    await wait_status(sessions, task["id"], SignTaskStatus.COMPLETED)
    assert await is_signed(sessions, build_id)
    finished = await cancel(api, people["owner"], task["id"])
    assert finished.status_code == 409
    assert await is_signed(sessions, build_id)


async def test_byte_identical_files_reported_with_one_artifact_href_are_placed_in_each_repository(
    api: httpx.AsyncClient,
    people: dict[str, dict[str, str]],
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_server: PulpServer,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    """SIGNING.md §8, seen with the real node: the same noarch file in two arch repositories
    is two entries; signed in the same second they come out identical, the node's upload finds
    the first one's artifact by sha256 and reports one href for both."""
    build_id = await finished_build("twins", arches=(ARCH, ARCH2))
    signer = node(api, people["signer"], pulp_server, gpg_key, tmp_path)
    await queue_task(api, people["owner"], build_id, sign_key["id"])
    task = await signer.poll()
    assert len(task["packages"]) == 7  # one source entry for both arches' source RPMs
    twins = [p for p in task["packages"] if p["name"].endswith(".noarch.rpm")]
    assert [p["arch"] for p in twins] == [ARCH, ARCH2]
    report = await signer.sign(task)
    shared = next(p["href"] for p in report["packages"] if p["id"] == twins[0]["id"])
    for package in report["packages"]:
        if package["id"] == twins[1]["id"]:
            package["href"] = shared
    assert (await signer.report(task["id"], report))[0].json() == {"success": True}
    await wait_status(sessions, task["id"], SignTaskStatus.COMPLETED)
    assert await is_signed(sessions, build_id)
    served: list[bytes] = []
    for repo in await rpm_repos(sessions, build_id):
        served += [
            b for name, b in (await served_packages(repo.url)).items() if name == twins[0]["name"]
        ]
    assert len(served) == 2
    assert served[0] == served[1]
    assert hashlib.sha256(served[0]).hexdigest() == signer.signed_checksums_of(twins[0]["id"])
