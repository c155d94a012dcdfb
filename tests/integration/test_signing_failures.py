"""Sign tasks that fail: a lost lease, nothing left to sign, a swap Pulp refuses, files
signed with another key; the build is left as it was and can be signed again (SIGNING.md §5)."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from scheduler.leases import requeue_expired_sign_tasks
from scheduler.reaper import Reaper
from shared.db.models import BuildArtifact, BuildTask, SignTaskStatus
from shared.db.session import SessionFactory, unit_of_work
from tests.support.sign_node import GpgKey, gpg_keyring
from tests.support.signing import (
    ARCH,
    FinishedBuild,
    People,
    artifact_hrefs,
    build_next_task,
    create_task,
    expire_sign_lease,
    is_signed,
    node,
    queue_task,
    sign_to_completion,
    task_row,
    wait_status,
)

pytestmark = [pytest.mark.pulp, pytest.mark.usefixtures("artifacts_service")]


async def test_an_abandoned_task_is_requeued_after_its_lease_and_the_lost_holder_is_refused(
    api: httpx.AsyncClient,
    people: People,
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_http: httpx.AsyncClient,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    build_id = await finished_build("lease")
    created = await queue_task(api, people["owner"], build_id, sign_key["id"])
    a = node(api, people["signer"], pulp_http, gpg_key, tmp_path)
    b = node(api, people["signer_b"], pulp_http, gpg_key, tmp_path)

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
    people: People,
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_http: httpx.AsyncClient,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    empty = await finished_build("norpms", with_rpms=False)
    refused = await create_task(api, people["owner"], empty, sign_key["id"])
    assert refused.status_code == 409
    assert "no source and binary" in refused.json()["detail"]

    build_id = await finished_build("vanished")
    signer = node(api, people["signer"], pulp_http, gpg_key, tmp_path)
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


async def test_a_swap_pulp_refuses_fails_the_task_and_a_restart_after_signing_unsigns_the_build(
    api: httpx.AsyncClient,
    people: People,
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_http: httpx.AsyncClient,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    build_id = await finished_build("restart", status="failed")  # failed, with its RPMs
    signer = node(api, people["signer"], pulp_http, gpg_key, tmp_path)
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

    await sign_to_completion(api, people, signer, build_id, sign_key["id"], sessions)

    restarted = await api.patch(
        f"/api/v1/builds/{build_id}/restart-failed", headers=people["owner"]
    )
    assert restarted.status_code in (200, 204), restarted.text
    assert not await is_signed(sessions, build_id)  # the rebuilt packages need signing again
    # Leave no idle task of this arch behind for the other tests' build node.
    await build_next_task(api, people["node"], ARCH, "failed", [])


@pytest.fixture
def other_gpg_key(tmp_path: Path) -> Iterator[GpgKey]:
    with gpg_keyring(tmp_path / "other-gnupg", name="Not The Registered Key") as key:
        yield key


async def test_files_signed_with_another_key_fail_the_task_and_change_nothing(
    api: httpx.AsyncClient,
    people: People,
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    other_gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_http: httpx.AsyncClient,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    """SIGNING.md §5.12: the server checks what Pulp read from each file's signatures."""
    build_id = await finished_build("impostor")
    impostor = node(api, people["signer"], pulp_http, other_gpg_key, tmp_path)
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
