"""Every token the gateway must refuse, and the two formats it must accept."""

import functools
import time

import httpx
import jwt
import pytest
from sqlalchemy import select, update

from shared.db.models import User
from shared.db.session import SessionFactory, unit_of_work
from tests.support.fixtures import JWT_SECRET
from tests.support.stack import TokenMaker, bearer
from tests.support.waiting import eventually

URL = "/api/v1/platforms/"

pytestmark = pytest.mark.usefixtures("clean_db")


async def user_id(sessions: SessionFactory, name: str) -> int:
    async with sessions() as session:
        found = await session.scalar(select(User.id).where(User.username == name))
    assert found is not None
    return found


async def test_reference_format_token_works(
    api: httpx.AsyncClient, make_token: TokenMaker, sessions: SessionFactory
) -> None:
    await make_token("legacy")
    uid = await user_id(sessions, "legacy")
    token = jwt.encode({"identity": {"user_id": uid}, "expires": time.time() + 60}, JWT_SECRET)
    assert (await api.get(URL, headers=bearer(token))).status_code == 200


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("Bearer", "Not authenticated"),
        ("Basic dXNlcjpwYXNz", "Not authenticated"),
        ("Bearer not.a.jwt", "Invalid or expired token."),
    ],
)
async def test_malformed_credentials_are_403(
    api: httpx.AsyncClient, header: str, detail: str
) -> None:
    answer = await api.get(URL, headers={"Authorization": header})
    assert answer.status_code == 403
    assert answer.json() == {"detail": detail}


async def test_expired_wrong_signature_and_unknown_user_are_403(
    api: httpx.AsyncClient, make_token: TokenMaker, sessions: SessionFactory
) -> None:
    await make_token("carol")
    uid = await user_id(sessions, "carol")
    expired = jwt.encode({"sub": str(uid), "exp": int(time.time()) - 1}, JWT_SECRET)
    forged = jwt.encode({"sub": str(uid), "exp": int(time.time()) + 60}, "f" * 64)
    ghost = jwt.encode({"sub": "999999", "exp": int(time.time()) + 60}, JWT_SECRET)
    for token in (expired, forged, ghost):
        answer = await api.get(URL, headers=bearer(token))
        assert answer.status_code == 403
        assert answer.json() == {"detail": "Invalid or expired token."}


async def _refused(api: httpx.AsyncClient, token: str) -> httpx.Response | None:
    answer = await api.get(URL, headers=bearer(token))
    return answer if answer.status_code == 403 else None


async def test_bumping_the_token_version_revokes_earlier_tokens(
    api: httpx.AsyncClient, make_token: TokenMaker, sessions: SessionFactory
) -> None:
    token = await make_token("dave")
    uid = await user_id(sessions, "dave")
    legacy = jwt.encode({"identity": {"user_id": uid}, "expires": time.time() + 60}, JWT_SECRET)
    assert (await api.get(URL, headers=bearer(token))).status_code == 200  # now cached
    async with unit_of_work(sessions) as session:
        await session.execute(update(User).where(User.id == uid).values(token_version=2))
    for revoked in (token, legacy):
        # The gateway learns of the change from PostgreSQL's notice, within moments.
        answer = await eventually(functools.partial(_refused, api, revoked), timeout=5)
        assert answer is not None
        assert "revoked" in answer.json()["detail"]
    assert (await api.get(URL, headers=bearer(await make_token("dave")))).status_code == 200


@pytest.mark.pulp
@pytest.mark.usefixtures("auth_service", "artifacts_service")
async def test_healthz_reports_each_server_and_rpc(api: httpx.AsyncClient) -> None:
    async def all_served() -> httpx.Response | None:
        answer = await api.get("/healthz")  # consumers are counted once a second
        return answer if answer.json()["status"] == "ok" else None

    answer = await eventually(all_served, timeout=5)
    assert answer is not None
    assert answer.status_code == 200
    body = answer.json()
    assert (body["postgresql"], body["rabbitmq"], body["redis"]) == ("ok", "ok", "ok")
    assert body["rpc_consumers"]["build_node.get_task"] >= 1
    assert body["rpc_consumers"]["auth.login_github"] >= 1
    assert body["rpc_consumers"]["distribution.create"] >= 1
    assert isinstance(body["dead_letters"], int)  # other tests of this run may leave some
