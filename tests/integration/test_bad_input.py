"""Bad input on every route: a clear 4xx naming the problem, and no table changes.

Each case is what a fuzzer or a careless client sent once and got a 500 for: integers
beyond PostgreSQL's integer, NUL bytes, lone surrogates, NaN/Infinity, over-long strings,
numbers where booleans belong, bodies over the size limit.
"""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import text

from shared.contracts.bounds import NAME_MAX, REF_MAX, URL_MAX
from shared.db.models import Base, UserKind
from shared.db.session import SessionFactory
from tests.support.builds import create_platform, platform_body, submit_build
from tests.support.fixtures import JWT_SECRET
from tests.support.stack import TokenMaker, bearer

pytestmark = pytest.mark.usefixtures("clean_db")

BIG = 2**31  # one past PostgreSQL's integer
HUGE = 2**62
NODE = "/api/v1/build_node"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    who: str
    status: int
    # Raw JSON text, so NaN, Infinity and lone surrogates reach the server as sent.
    body: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    # A word the answer's detail must contain, so a person knows what to fix.
    mentions: str = ""


def raw(value: Any) -> str:
    return json.dumps(value)  # keeps NaN/Infinity; escapes surrogates as \ud800


def build(**changes: Any) -> str:
    body: dict[str, Any] = {
        "platforms": [{"name": "P", "arch_list": ["x86_64"]}],
        "tasks": [{"url": "https://git.example.org/a.git", "git_ref": "v1"}],
    }
    body.update(changes)
    return raw(body)


def platform(**changes: Any) -> str:
    body = platform_body("Q", ["x86_64"])
    body.update(changes)
    return raw(body)


REPO = {"name": "baseos", "arch": "x86_64", "url": "https://m.example.org/", "type": "rpm"}

CASES = [
    # integers beyond the column type: ids in paths are unknown (404), elsewhere 422
    Case("build id", "GET", f"/api/v1/builds/{BIG}/", "user", 404, mentions="not found"),
    Case("platform id", "GET", f"/api/v1/platforms/{BIG}/", "user", 404, mentions="not found"),
    Case("restart id", "PATCH", f"/api/v1/builds/{BIG}/restart-failed", "user", 404),
    Case("remove id", "DELETE", f"/api/v1/builds/{BIG}/remove", "user", 404),
    Case("admin id", "PUT", f"/api/v1/users/{BIG}/admin", "admin", 404, raw({"is_admin": True})),
    Case("revoke id", "POST", f"/api/v1/users/{BIG}/revoke-tokens", "admin", 404),
    Case(
        "page",
        "GET",
        "/api/v1/builds/",
        "user",
        422,
        params={"pageNumber": str(HUGE)},
        mentions="pageNumber",
    ),
    Case(
        "offset",
        "GET",
        "/api/v1/platforms/",
        "user",
        422,
        params={"offset": str(HUGE)},
        mentions="offset",
    ),
    Case("users page", "GET", "/api/v1/users/all_users", "user", 422, params={"page": str(BIG)}),
    Case("user query id", "GET", "/api/v1/users/", "user", 422, params={"id": str(BIG)}),
    Case("projects page", "GET", "/api/v1/projects/alma", "user", 422, params={"page": str(BIG)}),
    Case(
        "done task id",
        "POST",
        f"{NODE}/build_done",
        "node",
        422,
        raw({"task_id": BIG, "status": "done"}),
        mentions="task_id",
    ),
    Case(
        "linked build",
        "POST",
        "/api/v1/builds/",
        "user",
        422,
        build(linked_builds=[BIG]),
        mentions="linked_builds",
    ),
    Case(
        "pinged task",
        "POST",
        f"{NODE}/ping",
        "node",
        422,
        raw({"active_tasks": [BIG]}),
        mentions="active_tasks",
    ),
    # NUL bytes in anything stored
    Case(
        "NUL url",
        "POST",
        "/api/v1/builds/",
        "user",
        422,
        build(tasks=[{"url": "https://x/\x00"}]),
        mentions="NUL",
    ),
    Case(
        "NUL ref",
        "POST",
        "/api/v1/builds/",
        "user",
        422,
        build(tasks=[{"url": "https://x/a.git", "git_ref": "v\x00"}]),
        mentions="NUL",
    ),
    Case(
        "NUL platform",
        "POST",
        "/api/v1/platforms/",
        "admin",
        422,
        platform(name="Q\x00"),
        mentions="name",
    ),
    Case(
        "NUL repo",
        "POST",
        "/api/v1/platforms/",
        "admin",
        422,
        platform(repos=[{**REPO, "name": "b\x00"}]),
        mentions="repos",
    ),
    Case(
        "NUL arch",
        "POST",
        "/api/v1/platforms/",
        "admin",
        422,
        platform(arch_list=["x\x00"]),
        mentions="arch_list",
    ),
    Case(
        "NUL arch wanted",
        "GET",
        f"{NODE}/get_task",
        "node",
        422,
        raw({"supported_arches": ["x86_64\x00"]}),
        mentions="supported_arches",
    ),
    Case(
        "NUL artifact",
        "POST",
        f"{NODE}/build_done",
        "node",
        422,
        raw(
            {
                "task_id": 1,
                "status": "done",
                "artifacts": [{"name": "a\x00", "type": "rpm", "href": "/h/"}],
            }
        ),
        mentions="artifacts",
    ),
    Case(
        "NUL mock option",
        "POST",
        "/api/v1/builds/",
        "user",
        422,
        build(mock_options={"macros": {"a": "\x00"}}),
        mentions="NUL",
    ),
    Case(
        "NUL query",
        "GET",
        "/api/v1/users/",
        "user",
        422,
        params={"username": "a\x00b"},
        mentions="NUL",
    ),
    # lone surrogates
    Case(
        "surrogate url",
        "POST",
        "/api/v1/builds/",
        "user",
        422,
        build(tasks=[{"url": "https://x/\ud800"}]),
        mentions="unicode",
    ),
    Case(
        "surrogate name",
        "POST",
        "/api/v1/platforms/",
        "admin",
        422,
        platform(name="\ud800"),
        mentions="name",
    ),
    Case(
        "surrogate data",
        "POST",
        "/api/v1/platforms/",
        "admin",
        422,
        platform(data={"mock": {"x": "\udfff"}}),
        mentions="data",
    ),
    # non-finite numbers
    Case(
        "infinity option",
        "POST",
        "/api/v1/builds/",
        "user",
        422,
        build(mock_options={"macros": {"x": float("inf")}}),
        mentions="Infinity",
    ),
    Case(
        "NaN data",
        "POST",
        "/api/v1/platforms/",
        "admin",
        422,
        platform(data={"timeout": float("nan")}),
        mentions="NaN",
    ),
    Case(
        "infinity in ids",
        "POST",
        f"{NODE}/ping",
        "node",
        422,
        raw({"active_tasks": [float("inf")]}),
        mentions="active_tasks",
    ),
    # over-long strings
    Case(
        "long url",
        "POST",
        "/api/v1/builds/",
        "user",
        422,
        build(tasks=[{"url": "https://x/" + "a" * URL_MAX}]),
        mentions="url",
    ),
    Case(
        "long ref",
        "POST",
        "/api/v1/builds/",
        "user",
        422,
        build(tasks=[{"url": "https://x/a.git", "git_ref": "r" * (REF_MAX + 1)}]),
        mentions="git_ref",
    ),
    Case(
        "long name",
        "POST",
        "/api/v1/platforms/",
        "admin",
        422,
        platform(name="n" * (NAME_MAX + 1)),
        mentions="name",
    ),
    # names people read, arches from a known pattern, booleans that are booleans
    Case(
        "control chars",
        "POST",
        "/api/v1/platforms/",
        "admin",
        422,
        platform(name="Q\x1b[31m"),
        mentions="printable",
    ),
    Case(
        "empty arch",
        "POST",
        "/api/v1/platforms/",
        "admin",
        422,
        platform(arch_list=[""]),
        mentions="arch_list",
    ),
    Case(
        "odd arch",
        "POST",
        "/api/v1/builds/",
        "user",
        422,
        build(platforms=[{"name": "P", "arch_list": ["x86 64"]}]),
        mentions="arch_list",
    ),
    Case(
        "number as bool",
        "POST",
        "/api/v1/platforms/",
        "admin",
        422,
        platform(repos=[{**REPO, "production": 0}]),
        mentions="production",
    ),
    Case(
        "number as admin flag",
        "PUT",
        "/api/v1/users/1/admin",
        "admin",
        422,
        raw({"is_admin": 0}),
        mentions="is_admin",
    ),
    # bodies over the limit (1 MiB): refused before they are read
    Case(
        "huge body",
        "POST",
        "/api/v1/builds/",
        "user",
        413,
        build(tasks=[{"url": "https://x/" + "a" * 2_000_000}]),
        mentions="Too Large",
    ),
]


@pytest.fixture
async def callers(api: httpx.AsyncClient, make_token: TokenMaker) -> dict[str, dict[str, str]]:
    admin = bearer(await make_token("root", admin=True))
    await create_platform(api, admin, platform_body("P", ["x86_64"]))
    user = bearer(await make_token("jdoe"))
    await submit_build(api, user, json.loads(build()))
    return {"admin": admin, "user": user, "node": bearer(await make_token("n", kind=UserKind.NODE))}


async def table_counts(sessions: SessionFactory) -> dict[str, int]:
    names = [t.name for t in Base.metadata.sorted_tables]
    query = " UNION ALL ".join(f"SELECT '{n}', count(*) FROM \"{n}\"" for n in names)
    async with sessions() as session:
        rows = (await session.execute(text(query))).all()
    return {str(name): int(count) for name, count in rows}


def detail_text(answer: httpx.Response) -> str:
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return answer.text  # Starlette's own 413 for a declared length is plain text
    detail = answer.json()["detail"]
    if isinstance(detail, list):
        return " ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail)
    return str(detail)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_bad_input_is_a_clear_4xx_and_changes_nothing(
    api: httpx.AsyncClient,
    callers: dict[str, dict[str, str]],
    sessions: SessionFactory,
    case: Case,
) -> None:
    before = await table_counts(sessions)
    headers = {**callers[case.who]}
    if case.body is not None:
        headers["Content-Type"] = "application/json"
    answer = await api.request(
        case.method,
        case.path,
        content=case.body.encode("utf-8", "surrogatepass") if case.body is not None else None,
        params=case.params,
        headers=headers,
    )
    assert answer.status_code == case.status, answer.text[:500]
    assert case.mentions in detail_text(answer), detail_text(answer)
    assert await table_counts(sessions) == before


async def test_a_chunked_body_over_the_limit_is_413(
    api: httpx.AsyncClient, callers: dict[str, dict[str, str]]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"tasks": [{"url": "https://x/'
        for _ in range(20):
            yield b"a" * 100_000
        yield b'"}]}'

    answer = await api.post(
        "/api/v1/builds/",
        content=chunks(),
        headers={**callers["user"], "Content-Type": "application/json"},
    )
    assert answer.status_code == 413


async def test_a_token_naming_an_impossible_user_is_403(api: httpx.AsyncClient) -> None:
    token = jwt.encode({"identity": {"user_id": 2**40}, "expires": 4e9}, JWT_SECRET)
    answer = await api.get("/api/v1/platforms/", headers=bearer(token))
    assert answer.status_code == 403
    assert answer.json() == {"detail": "Invalid or expired token."}
