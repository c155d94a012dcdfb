"""The feed's search filters (CLIENTS §5.2) and the refs' type and module flag, via the gateway."""

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from shared.db.models import Build, BuildArtifact, BuildTask
from shared.db.session import SessionFactory, unit_of_work
from tests.support.builds import create_platform, platform_body, submit_build
from tests.support.stack import TokenMaker, bearer

pytestmark = pytest.mark.usefixtures("clean_db")
FEED = "/api/v1/builds/"
BASH = "https://git.almalinux.org/rpms/bash.git"
ZSH = "https://git.almalinux.org/rpms/zsh.git"
FOO_SRPM = "https://example.org/foo-1.0-1.el8.src.rpm"


@dataclass(frozen=True)
class Feed:
    """Three builds of two people on two platforms, with packages, one released and signed."""

    api: httpx.AsyncClient
    who: dict[str, str]
    ids: dict[str, int]  # build name -> id
    people: dict[str, int]  # username -> user id
    platforms: dict[str, int]  # platform name -> id

    async def search(self, **params: Any) -> list[str]:
        answer = await self.api.get(FEED, params={"pageNumber": 1, **params}, headers=self.who)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        names = {v: k for k, v in self.ids.items()}
        found = [names[b["id"]] for b in body["builds"]]
        assert body["total_builds"] == len(found)
        return found


async def add_rpms(
    sessions: SessionFactory, task_id: int, attempt: int, nevras: list[tuple[Any, ...]]
) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(BuildTask).where(BuildTask.id == task_id).values(attempt=attempt)
        )
        for current, (name, epoch, version, release, arch) in nevras:
            session.add(
                BuildArtifact(
                    build_task_id=task_id,
                    attempt=attempt if current else attempt - 1,
                    name=f"{name}-{version}-{release}.{arch}.rpm",
                    type="rpm",
                    artifact_href="/pulp/api/v3/artifacts/x/",
                    href="/pulp/api/v3/content/rpm/packages/x/",
                    rpm_name=name,
                    rpm_epoch=epoch,
                    rpm_version=version,
                    rpm_release=release,
                    rpm_arch=arch,
                )
            )


@pytest.fixture
async def feed(api: httpx.AsyncClient, make_token: TokenMaker, sessions: SessionFactory) -> Feed:
    admin = bearer(await make_token("root", admin=True))
    platforms = {
        "P1": await create_platform(api, admin, platform_body("P1", ["x86_64", "i686"])),
        "P2": await create_platform(api, admin, platform_body("P2", ["x86_64", "aarch64"])),
    }
    alice, bob = bearer(await make_token("alice")), bearer(await make_token("bob"))
    one: dict[str, Any] = {"linked_builds": [], "mock_options": {}}
    b1 = await submit_build(
        api,
        alice,
        {
            **one,
            "platforms": [{"name": "P1", "arch_list": ["x86_64"]}],
            "tasks": [{"url": BASH, "git_ref": "imports/c8/bash-4.4.19-14.el8", "ref_type": 2}],
        },
    )
    b2 = await submit_build(
        api,
        bob,
        {
            **one,
            "platforms": [{"name": "P2", "arch_list": ["aarch64"]}],
            "tasks": [{"url": ZSH, "git_ref": "c8", "ref_type": 1}],
        },
    )
    b3 = await submit_build(
        api,
        alice,
        {
            **one,
            "platforms": [{"name": "P2", "arch_list": ["x86_64"]}],
            "tasks": [{"url": FOO_SRPM, "ref_type": 3}],
        },
    )
    bash = [
        (True, ("bash", 0, "4.4.19", "14.el8", "src")),
        (True, ("bash", 0, "4.4.19", "14.el8", "x86_64")),
        (True, ("bash-doc", 0, "4.4.19", "14.el8", "noarch")),
    ]
    await add_rpms(sessions, b1["tasks"][0]["id"], 1, bash)
    foo = [
        (False, ("stale-pkg", 0, "0.1", "1", "x86_64")),
        (True, ("foo", 2, "1.0", "1", "x86_64")),
    ]
    await add_rpms(sessions, b3["tasks"][0]["id"], 2, foo)
    async with unit_of_work(sessions) as session:
        await session.execute(update(Build).where(Build.id == b2["id"]).values(released=True))
        signed = Build.id.in_([b1["id"], b2["id"]])
        await session.execute(update(Build).where(signed).values(signed=True))
    return Feed(
        api=api,
        who=bob,
        ids={"b1": b1["id"], "b2": b2["id"], "b3": b3["id"]},
        people={"alice": b1["user"]["id"], "bob": b2["user"]["id"]},
        platforms=platforms,
    )


async def test_without_filters_the_feed_is_every_build_newest_first(feed: Feed) -> None:
    assert await feed.search() == ["b3", "b2", "b1"]


async def test_created_by(feed: Feed) -> None:
    assert await feed.search(created_by=feed.people["alice"]) == ["b3", "b1"]
    assert await feed.search(created_by=feed.people["bob"]) == ["b2"]
    assert await feed.search(created_by=999_999) == []


async def test_project_and_ref_are_parts_of_the_url_and_git_ref(feed: Feed) -> None:
    assert await feed.search(project="bash") == ["b1"]
    assert await feed.search(project="ZSH") == ["b2"]
    assert await feed.search(project="foo-1.0") == ["b3"]
    assert await feed.search(project="rpms/") == ["b2", "b1"]
    assert await feed.search(project="no-such-project") == []
    assert await feed.search(ref="bash-4.4.19") == ["b1"]
    assert await feed.search(ref="c8") == ["b2", "b1"]
    assert await feed.search(ref="c9") == []
    # LIKE's wildcards are plain characters here.
    assert await feed.search(ref="%") == []
    assert await feed.search(project="_") == []
    # A cleared text field is no filter.
    assert await feed.search(project="", ref="", rpm_name="") == ["b3", "b2", "b1"]


async def test_rpm_fields_match_a_package_of_the_current_attempt(feed: Feed) -> None:
    assert await feed.search(rpm_name="bash") == ["b1"]
    assert await feed.search(rpm_name="bas") == []  # exact, not a part
    assert await feed.search(rpm_name="foo", rpm_epoch=2) == ["b3"]
    assert await feed.search(rpm_name="foo", rpm_epoch=0) == []
    assert await feed.search(rpm_version="4.4.19", rpm_release="14.el8") == ["b1"]
    assert await feed.search(rpm_release="1") == ["b3"]
    assert await feed.search(rpm_arch="x86_64") == ["b3", "b1"]
    assert await feed.search(rpm_arch="noarch") == ["b1"]
    assert await feed.search(rpm_arch="aarch64") == []
    nevra = {"rpm_epoch": 0, "rpm_version": "4.4.19", "rpm_release": "14.el8"}
    assert await feed.search(rpm_name="bash", rpm_arch="src", **nevra) == ["b1"]
    assert await feed.search(rpm_name="bash-doc", rpm_arch="src", **nevra) == []
    # A package of an earlier attempt is no longer the build's.
    assert await feed.search(rpm_name="stale-pkg") == []


async def test_platform_and_task_arch(feed: Feed) -> None:
    assert await feed.search(platform_id=feed.platforms["P1"]) == ["b1"]
    assert await feed.search(platform_id=feed.platforms["P2"]) == ["b3", "b2"]
    assert await feed.search(platform_id=999_999) == []
    assert await feed.search(build_task_arch="aarch64") == ["b2"]
    assert await feed.search(build_task_arch="x86_64") == ["b3", "b1"]
    assert await feed.search(build_task_arch="ppc64le") == []


async def test_released_and_signed(feed: Feed) -> None:
    assert await feed.search(released="true") == ["b2"]
    assert await feed.search(released="false") == ["b3", "b1"]
    assert await feed.search(signed="true") == ["b2", "b1"]
    assert await feed.search(signed="false") == ["b3"]


async def test_filters_combine_with_and(feed: Feed) -> None:
    alice, p1, p2 = feed.people["alice"], feed.platforms["P1"], feed.platforms["P2"]
    assert await feed.search(created_by=alice, platform_id=p2, build_task_arch="x86_64") == ["b3"]
    assert await feed.search(created_by=alice, signed="true", project="bash") == ["b1"]
    assert await feed.search(created_by=alice, released="true") == []
    # The task-level filters hold for one and the same task.
    assert await feed.search(platform_id=p1, rpm_name="foo") == []
    assert await feed.search(platform_id=p2, rpm_name="foo", project="foo") == ["b3"]
    assert await feed.search(build_task_arch="aarch64", ref="bash") == []


async def test_filtered_pages_count_only_the_matches(feed: Feed) -> None:
    params = {"created_by": feed.people["alice"], "page_size": 1}
    pages = []
    for page in (1, 2, 3):
        answer = await feed.api.get(FEED, params={"pageNumber": page, **params}, headers=feed.who)
        assert answer.status_code == 200
        pages.append(([b["id"] for b in answer.json()["builds"]], answer.json()["total_builds"]))
    assert pages == [([feed.ids["b3"]], 2), ([feed.ids["b1"]], 2), ([], 2)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"created_by": "alice"}, "created_by"),
        ({"created_by": 0}, "created_by"),
        ({"platform_id": 2**31}, "platform_id"),
        ({"platform_id": "P1"}, "platform_id"),
        ({"rpm_epoch": -1}, "rpm_epoch"),
        ({"rpm_epoch": "one"}, "rpm_epoch"),
        ({"project": "x" * 201}, "project"),
        ({"ref": "x" * 1025}, "ref"),
        ({"rpm_name": "a\x00b"}, "rpm_name"),
        ({"rpm_arch": "x86-64"}, "rpm_arch"),
        ({"build_task_arch": "a" * 33}, "build_task_arch"),
        ({"released": "maybe"}, "released"),
        ({"signed": "2"}, "signed"),
    ],
)
async def test_malformed_filters_are_422_naming_the_field(
    api: httpx.AsyncClient, make_token: TokenMaker, params: dict[str, Any], field: str
) -> None:
    who = bearer(await make_token("jdoe"))
    answer = await api.get(FEED, params={"pageNumber": 1, **params}, headers=who)
    assert answer.status_code == 422, answer.text
    assert any(field in error["loc"] for error in answer.json()["detail"]), answer.text


async def test_ref_type_and_module_flag_are_kept_and_answered(
    api: httpx.AsyncClient, make_token: TokenMaker, sessions: SessionFactory
) -> None:
    admin = bearer(await make_token("root", admin=True))
    await create_platform(api, admin, platform_body("P1", ["x86_64"]))
    user = bearer(await make_token("jdoe"))
    tasks = [
        {"url": BASH, "git_ref": "c8", "ref_type": 1},
        {
            "url": "https://git.almalinux.org/modules/perl.git",
            "git_ref": "c8-stream-5.24",
            "ref_type": 1,
            "is_module": True,
        },
        {"url": FOO_SRPM, "ref_type": 3},
        {"url": ZSH, "git_ref": "imports/c8/zsh-5.5.1-6.el8"},  # an older client
    ]
    body = {"platforms": [{"name": "P1", "arch_list": ["x86_64"]}], "tasks": tasks}
    created = await submit_build(api, user, body)
    expected = [(1, False), (1, True), (3, False), (None, False)]
    refs = [(t["ref"]["ref_type"], t["ref"]["is_module"]) for t in created["tasks"]]
    assert refs == expected
    answer = await api.get(f"{FEED}{created['id']}/", headers=user)
    assert [(t["ref"]["ref_type"], t["ref"]["is_module"]) for t in answer.json()["tasks"]] == (
        expected
    )
    feed = (await api.get(FEED, params={"pageNumber": 1}, headers=user)).json()
    assert [t["ref"]["is_module"] for t in feed["builds"][0]["tasks"]] == [
        False,
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    "ref", [{"ref_type": 5}, {"ref_type": 0}, {"ref_type": "tag"}, {"is_module": "yes"}]
)
async def test_bad_ref_type_or_module_flag_is_422(
    api: httpx.AsyncClient, make_token: TokenMaker, sessions: SessionFactory, ref: dict[str, Any]
) -> None:
    admin = bearer(await make_token("root", admin=True))
    await create_platform(api, admin, platform_body("P1", ["x86_64"]))
    body = {
        "platforms": [{"name": "P1", "arch_list": ["x86_64"]}],
        "tasks": [{"url": BASH, "git_ref": "c8", **ref}],
    }
    answer = await api.post(FEED, json=body, headers=bearer(await make_token("jdoe")))
    assert answer.status_code == 422, answer.text
    async with sessions() as session:
        assert list(await session.scalars(select(Build.id))) == []
