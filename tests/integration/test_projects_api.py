"""GET /api/v1/projects/alma: the cache the gitea bridge writes, as the frontend reads it."""

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from api_gateway.main import create_app as create_gateway
from api_gateway.settings import GatewaySettings
from shared.projects_cache import ProjectCache, ProjectMeta, RefKind
from tests.support.processes import free_port
from tests.support.servers import Servers
from tests.support.stack import TokenMaker, bearer, settings_for

URL = "/api/v1/projects/alma"

pytestmark = pytest.mark.usefixtures("clean_db")


@pytest.fixture
async def cache(servers: Servers, service_env: dict[str, str]) -> AsyncIterator[ProjectCache]:
    """The cache under the gateway's Redis prefix, empty before and after the test."""
    redis = Redis.from_url(servers.redis_url)
    prefix = service_env["ALBS_REDIS_PREFIX"]

    async def empty() -> None:
        async for key in redis.scan_iter(match=f"{prefix}:project*"):
            await redis.delete(key)

    await empty()
    yield ProjectCache(redis, prefix)
    await empty()
    await redis.aclose()


@pytest.fixture
async def user(make_token: TokenMaker) -> dict[str, str]:
    return bearer(await make_token("jdoe"))


async def fill(cache: ProjectCache) -> None:
    for full_name, tags, branches in [
        ("rpms/zsh", ["imports/c8/zsh-5.5.1-6.el8"], ["c8"]),
        ("rpms/bash", ["imports/c8/bash-4.4.19-14.el8", "imports/c8/bash-4.4.19-12.el8"], ["c8"]),
        ("modules/perl-App-cpanminus", [], ["a8", "c8-stream-1.7044"]),
        ("rpms/bash-completion", [], ["c8"]),
    ]:
        name = full_name.split("/")[1]
        project = ProjectMeta(full_name, name, f"https://git.almalinux.org/{full_name}.git")
        for tag in tags:
            await cache.apply_ref_change(project, RefKind.TAG, tag, deleted=False)
        for branch in branches:
            await cache.apply_ref_change(project, RefKind.BRANCH, branch, deleted=False)
        # A repeated push never duplicates a branch.
        await cache.apply_ref_change(project, RefKind.BRANCH, branches[0], deleted=False)


async def test_an_empty_cache_is_an_empty_list(
    api: httpx.AsyncClient, user: dict[str, str], cache: ProjectCache
) -> None:
    answer = await api.get(URL, headers=user)
    assert answer.status_code == 200
    assert answer.json() == []


async def test_projects_are_listed_as_the_frontend_reads_them(
    api: httpx.AsyncClient, user: dict[str, str], cache: ProjectCache
) -> None:
    await fill(cache)
    answer = await api.get(URL, headers=user)
    assert answer.status_code == 200
    assert answer.json() == [
        {
            "name": "bash",
            "clone_url": "https://git.almalinux.org/rpms/bash.git",
            "tags": ["imports/c8/bash-4.4.19-12.el8", "imports/c8/bash-4.4.19-14.el8"],
            "branches": ["c8"],
        },
        {
            "name": "bash-completion",
            "clone_url": "https://git.almalinux.org/rpms/bash-completion.git",
            "tags": [],
            "branches": ["c8"],
        },
        {
            "name": "perl-App-cpanminus",
            "clone_url": "https://git.almalinux.org/modules/perl-App-cpanminus.git",
            "tags": [],
            "branches": ["a8", "c8-stream-1.7044"],
        },
        {
            "name": "zsh",
            "clone_url": "https://git.almalinux.org/rpms/zsh.git",
            "tags": ["imports/c8/zsh-5.5.1-6.el8"],
            "branches": ["c8"],
        },
    ]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("?name=BASH", ["bash", "bash-completion"]),
        ("?name=nothing-like-it", []),
        ("?page=1&page_size=3", ["bash", "bash-completion", "perl-App-cpanminus"]),
        ("?page=2&page_size=3", ["zsh"]),
        ("?page=3&page_size=3", []),
        ("?name=bash&page=2&page_size=1", ["bash-completion"]),
        ("?page_size=2", ["bash", "bash-completion"]),
    ],
)
async def test_name_filter_and_pages(
    api: httpx.AsyncClient, user: dict[str, str], cache: ProjectCache, query: str, names: list[str]
) -> None:
    await fill(cache)
    answer = await api.get(URL + query, headers=user)
    assert answer.status_code == 200
    assert [p["name"] for p in answer.json()] == names


@pytest.mark.parametrize("query", ["?page=0", "?page_size=0", "?page_size=1001"])
async def test_bad_pages_are_422(api: httpx.AsyncClient, user: dict[str, str], query: str) -> None:
    assert (await api.get(URL + query, headers=user)).status_code == 422


async def test_people_only(api: httpx.AsyncClient) -> None:
    assert (await api.get(URL)).status_code == 403


async def test_an_unreachable_cache_is_503(
    service_env: dict[str, str], user: dict[str, str]
) -> None:
    settings = settings_for(
        GatewaySettings, service_env, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    app = create_gateway(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            answer = await client.get(URL, headers=user)
    assert answer.status_code == 503
    assert answer.json()["detail"].startswith("The project cache is unavailable")


MODULES = "/api/v1/projects/alma/modularity"


async def test_no_module_in_the_cache_is_an_empty_list(
    api: httpx.AsyncClient, user: dict[str, str], cache: ProjectCache
) -> None:
    assert (await api.get(MODULES, headers=user)).json() == []
    rpm = ProjectMeta("rpms/bash", "bash", "https://git.almalinux.org/rpms/bash.git")
    await cache.apply_ref_change(rpm, RefKind.BRANCH, "c8", deleted=False)
    answer = await api.get(MODULES, headers=user)
    assert answer.status_code == 200
    assert answer.json() == []


async def test_modularity_lists_the_module_projects_only(
    api: httpx.AsyncClient, user: dict[str, str], cache: ProjectCache
) -> None:
    await fill(cache)
    nodejs = ProjectMeta("modules/nodejs", "nodejs", "https://git.almalinux.org/modules/nodejs.git")
    await cache.apply_ref_change(nodejs, RefKind.BRANCH, "c8-stream-14", deleted=False)
    answer = await api.get(MODULES, headers=user)
    assert answer.status_code == 200
    assert answer.json() == [
        {
            "name": "nodejs",
            "clone_url": "https://git.almalinux.org/modules/nodejs.git",
            "tags": [],
            "branches": ["c8-stream-14"],
        },
        {
            "name": "perl-App-cpanminus",
            "clone_url": "https://git.almalinux.org/modules/perl-App-cpanminus.git",
            "tags": [],
            "branches": ["a8", "c8-stream-1.7044"],
        },
    ]
    paged = await api.get(MODULES + "?name=PERL&page=1&page_size=1", headers=user)
    assert [p["name"] for p in paged.json()] == ["perl-App-cpanminus"]
    assert (await api.get(MODULES + "?page_size=0", headers=user)).status_code == 422


async def test_modularity_is_for_people_only(api: httpx.AsyncClient) -> None:
    assert (await api.get(MODULES)).status_code == 403
