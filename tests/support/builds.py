"""Small steps that many build tests share: a platform, a build, its repositories ready."""

from typing import Any

import httpx
from sqlalchemy import select

from shared.contracts.builds import BuildReposReady
from shared.db.models import Build
from shared.db.session import SessionFactory
from tests.support.events import EventBus
from tests.support.waiting import eventually


def platform_body(
    name: str, arches: list[str], repos: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "type": "rpm",
        "distr_type": "rhel",
        "distr_version": "8",
        "test_dist_name": "almalinux",
        "arch_list": arches,
        "repos": repos or [],
        "data": {
            "mock": {"package_manager": "dnf"},
            "yum": {},
            "definitions": {},
            "mock_dist": "el8",
        },
    }


async def create_platform(
    api: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any]
) -> int:
    answer = await api.post("/api/v1/platforms/", json=body, headers=admin)
    assert answer.status_code == 200, answer.text
    platform_id: int = answer.json()["id"]
    return platform_id


async def submit_build(
    api: httpx.AsyncClient, user: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    answer = await api.post("/api/v1/builds/", json=body, headers=user)
    assert answer.status_code == 200, answer.text
    build: dict[str, Any] = answer.json()
    return build


async def mark_ready(bus: EventBus, sessions: SessionFactory, build_id: int) -> None:
    """Announce the build's repositories as the artifacts service does, and wait for it."""
    await bus.publish(BuildReposReady(build_id=build_id))

    async def is_ready() -> bool:
        async with sessions() as session:
            return bool(await session.scalar(select(Build.ready).where(Build.id == build_id)))

    await eventually(is_ready)


async def get_task(
    api: httpx.AsyncClient, node: dict[str, str], arches: list[str]
) -> dict[str, Any] | None:
    answer = await api.request(
        "GET", "/api/v1/build_node/get_task", json={"supported_arches": arches}, headers=node
    )
    assert answer.status_code == 200, answer.text
    task: dict[str, Any] | None = answer.json()
    return task
