"""Canceling sign tasks, waiting or claimed (SIGNING.md §5.2), on the real servers and Pulp."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.db.models import SignTaskStatus
from shared.db.session import SessionFactory
from tests.support.events import EventTap
from tests.support.sign_node import GpgKey
from tests.support.signing import (
    FinishedBuild,
    People,
    artifact_hrefs,
    cancel,
    is_signed,
    node,
    queue_task,
    sign_to_completion,
    task_row,
)

pytestmark = [pytest.mark.pulp, pytest.mark.usefixtures("artifacts_service")]


async def test_a_waiting_or_claimed_task_is_canceled_and_the_build_can_be_signed_again(
    api: httpx.AsyncClient,
    people: People,
    sign_key: dict[str, Any],
    gpg_key: GpgKey,
    finished_build: FinishedBuild,
    pulp_http: httpx.AsyncClient,
    sessions: SessionFactory,
    event_tap: EventTap,
    tmp_path: Path,
) -> None:
    """SIGNING.md §5.2: an explicit cancel; the holder's late report changes nothing and the
    node's follow-up failure report (§4.6) is answered so that the node keeps running."""
    build_id = await finished_build("cancel")
    signer = node(api, people["signer"], pulp_http, gpg_key, tmp_path)
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
    task = await sign_to_completion(api, people, signer, build_id, sign_key["id"], sessions)
    finished = await cancel(api, people["owner"], task["id"])
    assert finished.status_code == 409
    assert await is_signed(sessions, build_id)
