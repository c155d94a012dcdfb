"""POST /builds/ plans tasks like the reference and refuses bad requests with nothing written."""

import httpx
import pytest
from sqlalchemy import func, select

from shared.db.models import Build, BuildTask, build_task_dependency
from shared.db.session import SessionFactory
from tests.support.builds import create_platform, platform_body, submit_build
from tests.support.events import EventTap
from tests.support.stack import TokenMaker, bearer

pytestmark = pytest.mark.usefixtures("clean_db")
URL = "/api/v1/builds/"


@pytest.fixture
async def users(api: httpx.AsyncClient, make_token: TokenMaker) -> dict[str, dict[str, str]]:
    admin = bearer(await make_token("root", admin=True))
    await create_platform(api, admin, platform_body("P", ["x86_64", "i686", "aarch64"]))
    await create_platform(api, admin, platform_body("Q", ["x86_64"]))
    return {"admin": admin, "user": bearer(await make_token("jdoe"))}


def body(**overrides: object) -> dict[str, object]:
    return {
        "platforms": [{"name": "P", "arch_list": ["x86_64", "i686"]}],
        "tasks": [
            {"url": "https://git.example.org/rpms/bash.git", "git_ref": "r0"},
            {"url": "https://example.org/foo-1.0-1.el8.src.rpm"},
        ],
        "linked_builds": [],
        "mock_options": {},
        **overrides,
    }


async def dependencies(sessions: SessionFactory) -> set[tuple[int, int]]:
    async with sessions() as session:
        rows = await session.execute(select(build_task_dependency))
        return {(r.task_id, r.depends_on_id) for r in rows}


async def rows(sessions: SessionFactory, model: type[Build] | type[BuildTask]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_tasks_and_dependencies_follow_the_reference(
    api: httpx.AsyncClient, users: dict[str, dict[str, str]], sessions: SessionFactory
) -> None:
    build = await submit_build(api, users["user"], body())
    tasks = build["tasks"]
    assert [(t["index"], t["platform"]["name"], t["arch"]) for t in tasks] == [
        (0, "P", "x86_64"),
        (0, "P", "i686"),
        (1, "P", "x86_64"),
        (1, "P", "i686"),
    ]
    t1, t2, t3, t4 = (t["id"] for t in tasks)
    assert await dependencies(sessions) == {(t2, t1), (t3, t1), (t4, t2), (t4, t3)}
    assert all(t["status"] == 0 and t["artifacts"] == [] for t in tasks)
    assert tasks[1]["ref"] == {
        "url": "https://git.example.org/rpms/bash.git",
        "git_ref": "r0",
        "ref_type": None,
        "is_module": False,
    }
    assert tasks[2]["ref"] == {
        "url": "https://example.org/foo-1.0-1.el8.src.rpm",
        "git_ref": None,
        "ref_type": None,
        "is_module": False,
    }
    assert build["user"]["username"] == "jdoe"
    assert build["status"] == "queued"
    assert build["linked_builds"] == []


async def test_platforms_run_in_parallel_and_linked_builds_are_kept(
    api: httpx.AsyncClient, users: dict[str, dict[str, str]], sessions: SessionFactory
) -> None:
    first = await submit_build(api, users["user"], body())
    second = await submit_build(
        api,
        users["user"],
        body(
            platforms=[
                {"name": "P", "arch_list": ["x86_64"]},
                {"name": "Q", "arch_list": ["x86_64"]},
            ],
            tasks=[{"url": "u0"}],
            linked_builds=[first["id"]],
            mock_options={"with": ["docs"], "target_arch": "x86_64"},
        ),
    )
    ids = {t["platform"]["name"]: t["id"] for t in second["tasks"]}
    assert {d for d in await dependencies(sessions) if d[0] in ids.values()} == set()
    assert second["linked_builds"] == [first["id"]]
    assert second["mock_options"] == {"with": ["docs"], "target_arch": "x86_64"}


async def test_build_created_event_is_published(
    api: httpx.AsyncClient, users: dict[str, dict[str, str]], event_tap: EventTap
) -> None:
    build = await submit_build(api, users["user"], body())
    events = await event_tap.settled("build.created", 1)
    assert len(events) == 1
    payload = events[0]
    assert payload["build_id"] == build["id"]
    assert payload["platforms"][0]["name"] == "P"
    assert payload["platforms"][0]["arch_list"] == ["x86_64", "i686"]
    assert [t["task_id"] for t in payload["tasks"]] == [t["id"] for t in build["tasks"]]


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"platforms": [{"name": "Nope", "arch_list": ["x86_64"]}]}, 404, "Nope"),
        ({"platforms": [{"name": "P", "arch_list": ["s390x"]}]}, 422, "s390x"),
        ({"linked_builds": [424242]}, 404, "424242"),
        ({"platforms": []}, 422, "platforms"),
        ({"tasks": []}, 422, "tasks"),
        ({"mock_options": {"yum_exclude": "foo"}}, 422, "yum_exclude"),
        ({"mock_options": {"bogus": 1}}, 422, "bogus"),
        ({"platforms": [{"name": "P"}]}, 422, "arch_list"),
        ({"tasks": [{"git_ref": "main"}]}, 422, "url"),
    ],
)
async def test_bad_requests_are_4xx_naming_the_problem_and_write_nothing(
    api: httpx.AsyncClient,
    users: dict[str, dict[str, str]],
    sessions: SessionFactory,
    overrides: dict[str, object],
    status: int,
    message: str,
) -> None:
    answer = await api.post(URL, json=body(**overrides), headers=users["user"])
    assert answer.status_code == status, answer.text
    assert message in answer.text
    assert await rows(sessions, Build) == 0
    assert await rows(sessions, BuildTask) == 0


async def test_listing_is_paginated_newest_first(
    api: httpx.AsyncClient, users: dict[str, dict[str, str]]
) -> None:
    ids = [
        (await submit_build(api, users["user"], body(tasks=[{"url": f"u{n}"}])))["id"]
        for n in range(12)
    ]
    first = (await api.get(URL, params={"pageNumber": 1}, headers=users["user"])).json()
    second = (await api.get(URL, params={"pageNumber": 2}, headers=users["user"])).json()
    assert [b["id"] for b in first["builds"]] == ids[::-1][:10]
    assert [b["id"] for b in second["builds"]] == ids[::-1][10:]
    assert (first["total_builds"], first["current_page"], second["current_page"]) == (12, 1, 2)
    small = (
        await api.get(URL, params={"pageNumber": 3, "page_size": 5}, headers=users["user"])
    ).json()
    assert [b["id"] for b in small["builds"]] == ids[::-1][10:]
    for bad in ({"pageNumber": 0}, {}, {"pageNumber": 1, "page_size": 1000}):
        assert (await api.get(URL, params=bad, headers=users["user"])).status_code == 422


async def test_get_one_build_and_unknown_is_404(
    api: httpx.AsyncClient, users: dict[str, dict[str, str]]
) -> None:
    build = await submit_build(api, users["user"], body())
    assert (await api.get(f"{URL}{build['id']}/", headers=users["user"])).json() == build
    missing = await api.get(f"{URL}999999/", headers=users["user"])
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Build with build_id=999999 is not found"}
