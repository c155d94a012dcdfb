"""Signing end to end on the real servers and the real Pulp: real RPMs (rpmbuild), a real
gpg key and rpmsign, a simulated Sign Node speaking albs-sign-node's protocol, and the build's
repositories serving the signed files afterwards (SIGNING.md §7)."""

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from shared.db.models import BuildArtifact, SignTaskStatus
from shared.db.session import SessionFactory
from tests.support.artifacts import repo_content, served_packages
from tests.support.sign_node import GpgKey, signature_key
from tests.support.signing import (
    ARCH,
    ARCH2,
    FinishedBuild,
    People,
    create_task,
    is_signed,
    node,
    queue_task,
    rpm_repos,
    tasks_of,
    wait_status,
)

pytestmark = [pytest.mark.pulp, pytest.mark.usefixtures("artifacts_service")]


async def test_a_build_is_signed_after_a_failed_attempt_and_its_repositories_serve_the_signed_files(
    api: httpx.AsyncClient,
    people: People,
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_http: httpx.AsyncClient,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    build_id = await finished_build("flow")
    assert sign_key["keyid"] == gpg_key.keyid
    assert "fingerprint" not in sign_key
    signer = node(api, people["signer"], pulp_http, gpg_key, tmp_path)
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


async def test_byte_identical_files_reported_with_one_artifact_href_are_placed_in_each_repository(
    api: httpx.AsyncClient,
    people: People,
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_http: httpx.AsyncClient,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    """SIGNING.md §8, seen with the real node: the same noarch file in two arch repositories
    is two entries; signed in the same second they come out identical, the node's upload finds
    the first one's artifact by sha256 and reports one href for both."""
    build_id = await finished_build("twins", arches=(ARCH, ARCH2))
    signer = node(api, people["signer"], pulp_http, gpg_key, tmp_path)
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
