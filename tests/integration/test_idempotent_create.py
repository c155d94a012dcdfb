"""POST /api/v1/builds/ with an Idempotency-Key: a retry never creates a second build."""

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from shared.db.models import Build
from shared.db.session import SessionFactory
from tests.support.builds import create_platform, platform_body
from tests.support.stack import TokenMaker, bearer

pytestmark = pytest.mark.usefixtures("clean_db")
URL = "/api/v1/builds/"
BODY: dict[str, Any] = {
    "platforms": [{"name": "P", "arch_list": ["x86_64"]}],
    "tasks": [{"url": "https://git.example.org/rpms/bash.git", "git_ref": "r1"}],
    "linked_builds": [],
    "mock_options": {},
}


@pytest.fixture
async def users(api: httpx.AsyncClient, make_token: TokenMaker) -> dict[str, dict[str, str]]:
    admin = bearer(await make_token("root", admin=True))
    await create_platform(api, admin, platform_body("P", ["x86_64", "i686"]))
    return {"alice": bearer(await make_token("alice")), "bob": bearer(await make_token("bob"))}


async def build_count(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Build)) or 0)


async def test_same_key_and_body_answer_the_first_build(
    api: httpx.AsyncClient, users: dict[str, dict[str, str]], sessions: SessionFactory
) -> None:
    alice = {**users["alice"], "Idempotency-Key": "retry-after-503"}
    first = await api.post(URL, json=BODY, headers=alice)
    # The same body with its keys in another order is the same request.
    again = await api.post(URL, json=dict(reversed(BODY.items())), headers=alice)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    other_body = {**BODY, "tasks": [{"url": "https://git.example.org/rpms/zsh.git"}]}
    conflict = await api.post(URL, json=other_body, headers=alice)
    assert conflict.status_code == 409
    assert "Idempotency-Key" in conflict.json()["detail"]
    # Keys are per user; without a key every request is a new build.
    bobs = await api.post(
        URL, json=BODY, headers={**users["bob"], "Idempotency-Key": "retry-after-503"}
    )
    plain = await api.post(URL, json=BODY, headers=users["alice"])
    assert len({first.json()["id"], bobs.json()["id"], plain.json()["id"]}) == 3
    assert await build_count(sessions) == 3


async def test_concurrent_retries_with_one_key_create_one_build(
    api: httpx.AsyncClient, users: dict[str, dict[str, str]], sessions: SessionFactory
) -> None:
    headers = {**users["alice"], "Idempotency-Key": "burst"}
    answers = await asyncio.gather(*(api.post(URL, json=BODY, headers=headers) for _ in range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["id"] for a in answers}) == 1
    assert await build_count(sessions) == 1


async def test_a_bad_key_is_a_422_and_creates_nothing(
    api: httpx.AsyncClient, users: dict[str, dict[str, str]], sessions: SessionFactory
) -> None:
    answer = await api.post(
        URL, json=BODY, headers={**users["alice"], "Idempotency-Key": "k" * 256}
    )
    assert answer.status_code == 422
    assert await build_count(sessions) == 0
