"""Who may register keys, ask for signing, claim and complete sign tasks, and the refusals."""

import uuid
from typing import Any

import httpx
import pytest

from tests.support.builds import submit_build
from tests.support.signing import ARCH, KEYS, TASKS, People, create_task

pytestmark = [pytest.mark.pulp, pytest.mark.usefixtures("artifacts_service")]


async def test_keys_are_validated_and_duplicates_are_conflicts(
    api: httpx.AsyncClient, people: People, sign_key: dict[str, Any]
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
    people: People,
    sign_key: dict[str, Any],
    sign_platform: str,
) -> None:
    unknown = await create_task(api, people["owner"], 999_999_999, sign_key["id"])
    assert unknown.status_code == 404, unknown.text
    body = {
        "platforms": [{"name": sign_platform, "arch_list": [ARCH]}],
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
    api: httpx.AsyncClient, people: People
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
