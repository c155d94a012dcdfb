"""The users API: look-ups, the user list, admin rights and token revocation (through auth)."""

import os
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from auth.users import ensure_user, set_admin_by_name
from shared.db.models import User, UserKind
from shared.db.session import SessionFactory, in_transaction
from shared.errors import Invalid
from shared.tokens import issue_token
from tests.support.fixtures import JWT_SECRET
from tests.support.processes import BIN
from tests.support.stack import TokenMaker, bearer

URL = "/api/v1/users"
PLATFORMS = "/api/v1/platforms/"

pytestmark = pytest.mark.usefixtures("clean_db", "auth_service")


async def user_id(sessions: SessionFactory, name: str) -> int:
    async with sessions() as session:
        found = await session.scalar(select(User.id).where(User.username == name))
    assert found is not None
    return found


@pytest.fixture
async def alice(make_token: TokenMaker) -> dict[str, str]:
    return bearer(await make_token("alice"))


@pytest.fixture
async def root(make_token: TokenMaker) -> dict[str, str]:
    return bearer(await make_token("root", admin=True))


async def test_find_a_user_by_id_username_name_or_email(
    api: httpx.AsyncClient, alice: dict[str, str], sessions: SessionFactory
) -> None:
    uid = await user_id(sessions, "alice")
    expected = {"id": uid, "username": "alice", "email": "alice@example.org"}
    for params in (
        {"id": uid},
        {"username": "alice"},
        {"name": "alice"},
        {"email": "Alice@Example.org"},
    ):
        answer = await api.get(f"{URL}/", params=params, headers=alice)
        assert answer.status_code == 200, params
        assert answer.json() == expected


@pytest.mark.parametrize(
    ("params", "shown"),
    [({"id": 999}, "999"), ({"name": "nobody"}, "nobody"), ({"email": "x@y.z"}, "x@y.z")],
)
async def test_unknown_user_is_404_naming_the_value(
    api: httpx.AsyncClient, alice: dict[str, str], params: dict[str, str | int], shown: str
) -> None:
    answer = await api.get(f"{URL}/", params=params, headers=alice)
    assert answer.status_code == 404
    assert answer.json() == {"detail": f'User "{shown}" is not found'}


async def test_a_look_up_without_criteria_is_422(
    api: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    answer = await api.get(f"{URL}/", headers=alice)
    assert answer.status_code == 422
    [error] = answer.json()["detail"]  # a list, like every 422 in the OpenAPI document
    assert "id, username (or name), email" in error["msg"]


async def test_all_users_lists_people_in_pages(
    api: httpx.AsyncClient, make_token: TokenMaker
) -> None:
    headers = bearer(await make_token("p0"))
    for n in range(1, 5):
        await make_token(f"p{n}")
    await make_token("node-1", kind=UserKind.NODE)
    await make_token("alts", kind=UserKind.SERVICE)

    everyone = (await api.get(f"{URL}/all_users", headers=headers)).json()
    assert [u["username"] for u in everyone] == ["p0", "p1", "p2", "p3", "p4"]
    assert set(everyone[0]) == {"id", "username", "email"}
    page = await api.get(f"{URL}/all_users", params={"page": 2, "page_size": 2}, headers=headers)
    assert [u["username"] for u in page.json()] == ["p2", "p3"]
    too_big = await api.get(f"{URL}/all_users", params={"page_size": 101}, headers=headers)
    assert too_big.status_code == 422


async def test_admin_grants_and_removes_admin_rights_at_once(
    api: httpx.AsyncClient, alice: dict[str, str], root: dict[str, str], sessions: SessionFactory
) -> None:
    uid = await user_id(sessions, "alice")
    assert (await api.put(PLATFORMS, json={"name": "x"}, headers=alice)).status_code == 403

    granted = await api.put(f"{URL}/{uid}/admin", json={"is_admin": True}, headers=root)
    assert granted.status_code == 200, granted.text
    assert granted.json()["is_admin"] is True
    # The same token now passes the Admin rule (404: the platform does not exist).
    assert (await api.put(PLATFORMS, json={"name": "x"}, headers=alice)).status_code == 404
    assert (await api.get(f"{URL}/me", headers=alice)).json()["is_admin"] is True

    removed = await api.put(f"{URL}/{uid}/admin", json={"is_admin": False}, headers=root)
    assert removed.json()["is_admin"] is False
    assert (await api.put(PLATFORMS, json={"name": "x"}, headers=alice)).status_code == 403


async def test_admin_rights_need_an_admin_and_a_person(
    api: httpx.AsyncClient,
    alice: dict[str, str],
    root: dict[str, str],
    make_token: TokenMaker,
    sessions: SessionFactory,
) -> None:
    await make_token("node-1", kind=UserKind.NODE)
    node_id = await user_id(sessions, "node-1")
    alice_id = await user_id(sessions, "alice")

    self_grant = await api.put(f"{URL}/{alice_id}/admin", json={"is_admin": True}, headers=alice)
    assert self_grant.status_code == 403
    to_node = await api.put(f"{URL}/{node_id}/admin", json={"is_admin": True}, headers=root)
    assert to_node.status_code == 422
    assert to_node.json() == {"detail": '"node-1" is a node account; only people can be admins.'}
    unknown = await api.put(f"{URL}/999/admin", json={"is_admin": True}, headers=root)
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": 'User "999" is not found'}
    async with sessions() as session:
        admins = list(await session.scalars(select(User.username).where(User.is_admin)))
    assert admins == ["root"]


async def test_a_user_revokes_their_own_tokens(
    api: httpx.AsyncClient, make_token: TokenMaker, sessions: SessionFactory
) -> None:
    first, second = bearer(await make_token("alice")), bearer(await make_token("alice"))
    uid = await user_id(sessions, "alice")
    answer = await api.post(f"{URL}/{uid}/revoke-tokens", headers=first)
    assert answer.status_code == 200, answer.text
    for revoked in (first, second):
        refused = await api.get(f"{URL}/me", headers=revoked)
        assert refused.status_code == 403
        assert refused.json() == {"detail": "This token has been revoked; log in again."}
    assert (
        await api.get(f"{URL}/me", headers=bearer(await make_token("alice")))
    ).status_code == 200


async def test_only_an_admin_revokes_someone_elses_tokens(
    api: httpx.AsyncClient,
    alice: dict[str, str],
    root: dict[str, str],
    make_token: TokenMaker,
    sessions: SessionFactory,
) -> None:
    bob = bearer(await make_token("bob"))
    bob_id = await user_id(sessions, "bob")
    refused = await api.post(f"{URL}/{bob_id}/revoke-tokens", headers=alice)
    assert refused.status_code == 403
    assert (await api.get(f"{URL}/me", headers=bob)).status_code == 200

    assert (await api.post(f"{URL}/{bob_id}/revoke-tokens", headers=root)).status_code == 200
    assert (await api.get(f"{URL}/me", headers=bob)).status_code == 403
    assert (await api.get(f"{URL}/me", headers=alice)).status_code == 200


async def test_an_admin_revokes_a_build_nodes_token(
    api: httpx.AsyncClient, root: dict[str, str], make_token: TokenMaker, sessions: SessionFactory
) -> None:
    node = bearer(await make_token("node-7", kind=UserKind.NODE))
    node_id = await user_id(sessions, "node-7")
    ping = "/api/v1/build_node/ping"
    assert (await api.post(ping, json={"active_tasks": []}, headers=node)).status_code == 200
    assert (await api.post(f"{URL}/{node_id}/revoke-tokens", headers=root)).status_code == 200
    assert (await api.post(ping, json={"active_tasks": []}, headers=node)).status_code == 403


async def test_a_token_naming_another_kind_of_account_is_refused(
    api: httpx.AsyncClient, alice: dict[str, str], sessions: SessionFactory
) -> None:
    uid = await user_id(sessions, "alice")
    as_node = issue_token(JWT_SECRET, uid, lifetime_seconds=60, kind="node")
    answer = await api.get(f"{URL}/me", headers=bearer(as_node))
    assert answer.status_code == 403
    assert answer.json() == {"detail": "Invalid or expired token."}


def albs(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "albs"), *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_cli_revokes_tokens_and_manages_admins(
    api: httpx.AsyncClient, make_token: TokenMaker, service_env: dict[str, str], tmp_path: Path
) -> None:
    token = bearer(await make_token("ops"))
    await make_token("node-9", kind=UserKind.NODE)

    assert albs(service_env, tmp_path, "user", "admin", "ops").returncode == 0
    assert (await api.get(f"{URL}/me", headers=token)).json()["is_admin"] is True
    assert albs(service_env, tmp_path, "user", "admin", "ops", "--remove").returncode == 0
    assert (await api.get(f"{URL}/me", headers=token)).json()["is_admin"] is False

    revoked = albs(service_env, tmp_path, "token", "revoke", "--username", "ops")
    assert revoked.returncode == 0, revoked.stderr
    assert (await api.get(f"{URL}/me", headers=token)).status_code == 403

    wrong_kind = albs(service_env, tmp_path, "token", "revoke", "--username", "node-9")
    assert wrong_kind.returncode != 0
    assert 'There is no user named "node-9"' in wrong_kind.stderr


async def test_machine_accounts_never_become_admins(sessions: SessionFactory) -> None:
    with pytest.raises(ValueError, match="only people"):
        await in_transaction(
            sessions, ensure_user, "node-9", email="n@x", kind=UserKind.NODE, admin=True
        )
    await in_transaction(
        sessions, ensure_user, "alts", email="a@x", kind=UserKind.SERVICE, admin=False
    )
    with pytest.raises(Invalid, match="only people can be admins"):
        await in_transaction(sessions, set_admin_by_name, "alts", True)
    async with sessions() as session:
        assert list(await session.scalars(select(User.is_admin))) == [False]
