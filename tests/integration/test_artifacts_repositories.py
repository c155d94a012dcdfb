"""A build's Pulp repositories, made and removed by the artifacts service on the real Pulp."""

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from shared.contracts.builds import BuildDeleted
from shared.db.models import InboxMessage
from shared.db.session import SessionFactory
from tests.support.artifacts import (
    BuildMaker,
    EventLog,
    PlannedBuild,
    build_repositories,
    pulp_repos_named,
)
from tests.support.events import EventBus
from tests.support.waiting import eventually

pytestmark = [pytest.mark.pulp, pytest.mark.usefixtures("artifacts_service")]

API = "/pulp/api/v3"


async def test_build_created_makes_its_repositories_in_pulp_and_records_them(
    sessions: SessionFactory,
    module_bus: EventBus,
    event_log: EventLog,
    pulp_http: httpx.AsyncClient,
    make_build: BuildMaker,
) -> None:
    build = await make_build("made", ["x86_64", "i686"])
    started = time.monotonic()
    await module_bus.publish(build.created_event())
    await event_log.wait_for("build.repos_ready", build_id=build.build_id)
    print(f"5 repositories made in {time.monotonic() - started:.1f} s")

    p, b = build.platform, build.build_id
    rows = await build_repositories(sessions, b)
    assert sorted((r.name, r.arch, r.type, r.debug) for r in rows) == sorted(
        [
            (f"{p}-src-{b}-br", "src", "rpm", False),
            (f"{p}-x86_64-{b}-br", "x86_64", "rpm", False),
            (f"{p}-i686-{b}-br", "i686", "rpm", False),
            (f"{p}-x86_64-{b}-debug-br", "x86_64", "rpm", True),
            (f"{p}-i686-{b}-debug-br", "i686", "rpm", True),
        ]
    )
    async with httpx.AsyncClient(timeout=30) as content:
        for row in rows:
            repo = (await pulp_http.get(str(row.pulp_href))).raise_for_status().json()
            assert (repo["name"], repo["autopublish"]) == (row.name, True)
            distros = await pulp_http.get(
                f"{API}/distributions/rpm/rpm/", params={"name": f"{row.name}-distro"}
            )
            [distro] = distros.json()["results"]
            assert distro["base_path"] == f"builds/{row.name}"
            assert distro["repository"] == row.pulp_href
            assert row.url == distro["base_url"]
            # The repositories a node reads are published while still empty, so its dnf
            # finds metadata from the start; nobody reads `src` before its first package.
            repomd = await content.get(f"{row.url}repodata/repomd.xml")
            assert repomd.status_code == (404 if row.arch == "src" else 200)


async def test_a_redelivered_build_created_makes_no_duplicates(
    sessions: SessionFactory,
    module_bus: EventBus,
    event_log: EventLog,
    pulp_http: httpx.AsyncClient,
    make_build: BuildMaker,
) -> None:
    build = await make_build("again", ["x86_64"])
    message_id = await module_bus.publish(build.created_event())
    await event_log.wait_for("build.repos_ready", build_id=build.build_id)
    first = [(r.id, r.pulp_href) for r in await build_repositories(sessions, build.build_id)]

    await module_bus.publish(build.created_event(), message_id=message_id)  # same message
    await module_bus.publish(build.created_event())  # the same event published twice

    async def both_handled() -> bool:
        return len(event_log.of("build.repos_ready", build_id=build.build_id)) == 2

    await eventually(both_handled, timeout=60)
    again = [(r.id, r.pulp_href) for r in await build_repositories(sessions, build.build_id)]
    assert again == first
    for row in await build_repositories(sessions, build.build_id):
        named = await pulp_http.get(f"{API}/repositories/rpm/rpm/", params={"name": row.name})
        assert named.json()["count"] == 1


@pytest.fixture
async def blocked_base_path(
    pulp_http: httpx.AsyncClient, make_build: BuildMaker
) -> AsyncIterator[tuple[PlannedBuild, str]]:
    """A build whose x86_64 debug repository cannot get its distribution: the base path is taken."""
    build = await make_build("blocked", ["x86_64"])
    blocked = f"{build.platform}-x86_64-{build.build_id}-debug-br"
    answer = await pulp_http.post(
        f"{API}/distributions/rpm/rpm/",
        json={"name": f"blocker-{uuid.uuid4().hex}", "base_path": f"builds/{blocked}"},
    )
    task = (await pulp_http.get(answer.raise_for_status().json()["task"])).json()
    for _ in range(200):
        if task["state"] in ("completed", "failed"):
            break
        task = (await pulp_http.get(task["pulp_href"])).json()
    [blocker] = task["created_resources"]
    yield build, blocked
    await pulp_http.delete(blocker)


async def test_repositories_that_cannot_be_made_fail_the_build_and_leave_nothing(
    blocked_base_path: tuple[PlannedBuild, str],
    sessions: SessionFactory,
    module_bus: EventBus,
    event_log: EventLog,
    pulp_http: httpx.AsyncClient,
) -> None:
    build, blocked = blocked_base_path
    await module_bus.publish(build.created_event())
    failed = await event_log.wait_for("build.repos_failed", build_id=build.build_id)

    assert blocked in failed["reason"]
    assert "base_path" in failed["reason"]
    assert not event_log.of("build.repos_ready", build_id=build.build_id)
    assert await build_repositories(sessions, build.build_id) == []
    p, b = build.platform, build.build_id
    names = [f"{p}-src-{b}-br", f"{p}-x86_64-{b}-br", blocked]
    assert await pulp_repos_named(pulp_http, names) == []


async def test_build_deleted_removes_its_repositories_and_distributions(
    sessions: SessionFactory,
    module_bus: EventBus,
    event_log: EventLog,
    pulp_http: httpx.AsyncClient,
    make_build: BuildMaker,
) -> None:
    build = await make_build("gone", ["x86_64"])
    await module_bus.publish(build.created_event())
    await event_log.wait_for("build.repos_ready", build_id=build.build_id)
    rows = await build_repositories(sessions, build.build_id)
    names = [r.name for r in rows]
    assert len(await pulp_repos_named(pulp_http, names)) == 2 * len(rows)

    deleted = BuildDeleted(
        build_id=build.build_id, repository_hrefs=[str(r.pulp_href) for r in rows]
    )
    first = await module_bus.publish(deleted)
    second = await module_bus.publish(deleted)  # everything is gone already by then

    async def handled(message_id: str) -> bool:
        async with sessions() as session:
            found = await session.scalar(
                select(InboxMessage.message_id).where(
                    InboxMessage.consumer == "artifacts",
                    InboxMessage.message_id == uuid.UUID(message_id),
                )
            )
            return found is not None

    await eventually(lambda: handled(first), timeout=120)
    await eventually(lambda: handled(second), timeout=120)
    assert await pulp_repos_named(pulp_http, names) == []
