"""Leases running out, completion, restart of failed tasks, deletion."""

from datetime import timedelta
from typing import Any

import httpx
import pytest
from faststream import FastStream
from sqlalchemy import delete, func, insert, select, text, update

from scheduler.reaper import Reaper
from shared.contracts.build_node import BuildTaskArtifactsStored
from shared.db.base import utcnow
from shared.db.models import (
    Base,
    BuildArtifact,
    BuildTask,
    Distribution,
    UserKind,
    distribution_packages,
)
from shared.db.session import SessionFactory, unit_of_work
from tests.support.builds import create_platform, get_task, mark_ready, platform_body, submit_build
from tests.support.events import EventBus, EventTap
from tests.support.stack import TokenMaker, bearer
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("clean_db")
NODE = "/api/v1/build_node"
ONE_REF = {
    "platforms": [{"name": "P", "arch_list": ["x86_64"]}],
    "tasks": [{"url": "https://g.example.org/a.git"}],
}


@pytest.fixture
async def actors(api: httpx.AsyncClient, make_token: TokenMaker) -> dict[str, dict[str, str]]:
    admin = bearer(await make_token("root", admin=True))
    await create_platform(api, admin, platform_body("P", ["x86_64", "i686"]))
    return {
        "admin": admin,
        "owner": bearer(await make_token("owner")),
        "other": bearer(await make_token("other")),
        "node": bearer(await make_token("node", kind=UserKind.NODE)),
    }


async def expire_lease(sessions: SessionFactory, task_id: int) -> None:
    """As if the node had stopped pinging for longer than the lease."""
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(BuildTask)
            .where(BuildTask.id == task_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


async def store(
    bus: EventBus, sessions: SessionFactory, task_id: int, error: str | None = None
) -> None:
    async with sessions() as session:
        task = await session.get(BuildTask, task_id)
    assert task is not None
    await bus.publish(
        BuildTaskArtifactsStored(
            task_id=task_id, build_id=task.build_id, attempt=task.attempt, error=error
        )
    )

    async def stored() -> bool:
        async with sessions() as session:
            row = await session.get(BuildTask, task_id, populate_existing=True)
            return row is not None and row.artifacts_stored_at is not None

    await eventually(stored)


async def build_of(api: httpx.AsyncClient, who: dict[str, str], build_id: int) -> dict[str, Any]:
    body: dict[str, Any] = (await api.get(f"/api/v1/builds/{build_id}/", headers=who)).json()
    return body


async def test_expired_lease_moves_the_task_to_another_node(
    api: httpx.AsyncClient,
    actors: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
    scheduler: FastStream,
    event_tap: EventTap,
) -> None:
    build = await submit_build(api, actors["owner"], ONE_REF)
    await mark_ready(event_bus, sessions, build["id"])
    first = {**actors["node"], "X-Node-Id": "builder-a"}
    second = {**actors["node"], "X-Node-Id": "builder-b"}
    task = await get_task(api, first, ["x86_64"])
    assert task is not None
    await expire_lease(sessions, task["id"])
    assert await Reaper(sessions, 1).reap_once() == 1
    assert [e["task_id"] for e in await event_tap.settled("build_task.requeued", 1)] == [task["id"]]

    again = await get_task(api, second, ["x86_64"])
    assert again is not None
    assert again["id"] == task["id"]
    async with sessions() as session:
        row = await session.get(BuildTask, task["id"])
    assert row is not None
    assert (row.attempt, row.node_id) == (2, "node/builder-b")

    # The first node comes back late: it is told the task is no longer its own.
    late = await api.post(
        f"{NODE}/build_done",
        json={"task_id": task["id"], "status": "done", "artifacts": []},
        headers=first,
    )
    assert late.status_code == 409
    ok = await api.post(
        f"{NODE}/build_done",
        json={"task_id": task["id"], "status": "done", "artifacts": []},
        headers=second,
    )
    assert ok.json() == {"ok": True}
    finished = await event_tap.settled("build_task.finished", 1)
    assert [(e["task_id"], e["attempt"]) for e in finished] == [(task["id"], 2)]


async def test_a_late_report_for_a_task_waiting_to_be_retried_is_accepted_once(
    api: httpx.AsyncClient,
    actors: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
) -> None:
    build = await submit_build(api, actors["owner"], ONE_REF)
    await mark_ready(event_bus, sessions, build["id"])
    task = await get_task(api, actors["node"], ["x86_64"])
    assert task is not None
    await expire_lease(sessions, task["id"])
    await Reaper(sessions, 1).reap_once()
    body = {"task_id": task["id"], "status": "done", "artifacts": []}
    assert (await api.post(f"{NODE}/build_done", json=body, headers=actors["node"])).json() == {
        "ok": True
    }
    assert await get_task(api, actors["node"], ["x86_64"]) is None  # nothing left to hand out


async def test_build_completes_when_every_task_is_stored(
    api: httpx.AsyncClient,
    actors: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
    event_tap: EventTap,
) -> None:
    body = {**ONE_REF, "platforms": [{"name": "P", "arch_list": ["x86_64", "i686"]}]}
    build = await submit_build(api, actors["owner"], body)
    await mark_ready(event_bus, sessions, build["id"])
    for status in ("done", "excluded"):
        task = await get_task(api, actors["node"], ["x86_64", "i686"])
        assert task is not None
        await api.post(
            f"{NODE}/build_done",
            json={"task_id": task["id"], "status": status, "artifacts": []},
            headers=actors["node"],
        )
        assert (await build_of(api, actors["owner"], build["id"]))["status"] == "running"
        await store(event_bus, sessions, task["id"])
    view = await build_of(api, actors["owner"], build["id"])
    assert view["status"] == "completed"
    assert [t["status"] for t in view["tasks"]] == [2, 4]
    completed = await event_tap.settled("build.completed", 1)
    assert completed == [
        {
            **completed[0],
            "build_id": build["id"],
            "status": "completed",
            "tasks_by_status": {"completed": 1, "excluded": 1},
        }
    ]


async def test_restart_failed_requeues_at_once_in_order_and_hides_old_artifacts(
    api: httpx.AsyncClient,
    actors: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
) -> None:
    body = {
        "platforms": [{"name": "P", "arch_list": ["x86_64"]}],
        "tasks": [{"url": "a"}, {"url": "b"}],
    }
    build = await submit_build(api, actors["owner"], body)
    t1, t2 = (t["id"] for t in build["tasks"])
    await mark_ready(event_bus, sessions, build["id"])
    for expected in (t1, t2):
        task = await get_task(api, actors["node"], ["x86_64"])
        assert task is not None
        assert task["id"] == expected
        await api.post(
            f"{NODE}/build_done",
            json={"task_id": expected, "status": "failed", "artifacts": []},
            headers=actors["node"],
        )
        async with unit_of_work(sessions) as session:  # the artifacts service filed a log
            session.add(
                BuildArtifact(
                    build_task_id=expected,
                    attempt=1,
                    name="albs.log",
                    type="build_log",
                    artifact_href="/a/",
                    href="/c/",
                )
            )
        await store(event_bus, sessions, expected)
    view = await build_of(api, actors["owner"], build["id"])
    assert view["status"] == "failed"
    assert [len(t["artifacts"]) for t in view["tasks"]] == [1, 1]

    assert (
        await api.patch(f"/api/v1/builds/{build['id']}/restart-failed", headers=actors["other"])
    ).status_code == 403
    answer = await api.patch(
        f"/api/v1/builds/{build['id']}/restart-failed", json={}, headers=actors["owner"]
    )
    assert (answer.status_code, answer.json()) == (200, None)
    view = await build_of(api, actors["owner"], build["id"])
    assert [(t["status"], t["artifacts"]) for t in view["tasks"]] == [(0, []), (0, [])]
    first = await get_task(api, actors["node"], ["x86_64"])
    assert first is not None
    assert first["id"] == t1  # immediately eligible, no 20-minute wait
    assert await get_task(api, actors["node"], ["x86_64"]) is None  # t2 is chained after t1
    assert (
        await api.patch("/api/v1/builds/999999/restart-failed", headers=actors["owner"])
    ).status_code == 404


async def table_counts(sessions: SessionFactory) -> dict[str, int]:
    async with sessions() as session:
        return {
            t.name: int(await session.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
            if t.name not in ("outbox", "inbox")
        }


async def test_delete_removes_everything_of_the_build_and_only_for_its_owner(
    api: httpx.AsyncClient,
    actors: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
    event_tap: EventTap,
) -> None:
    empty = await table_counts(sessions)
    keep = await submit_build(api, actors["other"], ONE_REF)
    baseline = await table_counts(sessions)
    body = {
        "platforms": [{"name": "P", "arch_list": ["x86_64", "i686"]}],
        "tasks": [{"url": "a"}, {"url": "b"}],
        "linked_builds": [keep["id"]],
    }
    build = await submit_build(api, actors["owner"], body)
    await mark_ready(event_bus, sessions, build["id"])
    task = await get_task(api, actors["node"], ["x86_64"])
    assert task is not None

    url = f"/api/v1/builds/{build['id']}/remove"
    assert (await api.delete(url, headers=actors["other"])).status_code == 403
    busy = await api.delete(url, headers=actors["owner"])
    assert busy.status_code == 409
    await api.post(
        f"{NODE}/build_done",
        json={"task_id": task["id"], "status": "done", "artifacts": []},
        headers=actors["node"],
    )
    async with unit_of_work(sessions) as session:
        session.add(
            BuildArtifact(
                build_task_id=task["id"],
                attempt=1,
                name="x.rpm",
                type="rpm",
                artifact_href="/a/",
                href="/c/",
            )
        )
    linked_by_other = await api.delete(
        f"/api/v1/builds/{keep['id']}/remove", headers=actors["admin"]
    )
    assert linked_by_other.status_code == 409

    async with unit_of_work(sessions) as session:
        distribution = Distribution(name="lifecycle-distro")
        session.add(distribution)
        await session.flush()
        await session.execute(
            insert(distribution_packages).values(
                distribution_id=distribution.id, build_id=build["id"]
            )
        )
    distributed = await api.delete(url, headers=actors["owner"])
    assert distributed.status_code == 409
    assert "lifecycle-distro" in distributed.json()["detail"]
    async with unit_of_work(sessions) as session:
        await session.execute(delete(Distribution).where(Distribution.name == "lifecycle-distro"))

    gone = await api.delete(url, headers=actors["owner"])
    assert (gone.status_code, gone.content) == (204, b"")
    assert await table_counts(sessions) == baseline != empty
    assert (await api.delete(url, headers=actors["owner"])).status_code == 404
    assert [e["build_id"] for e in await event_tap.settled("build.deleted", 1)] == [build["id"]]
    admin_delete = await api.delete(f"/api/v1/builds/{keep['id']}/remove", headers=actors["admin"])
    assert admin_delete.status_code == 204
    assert await table_counts(sessions) == {
        **empty,
        "users": empty["users"],
        "platforms": baseline["platforms"],
    }


async def test_unstorable_artifacts_fail_the_task_visibly(
    api: httpx.AsyncClient,
    actors: dict[str, dict[str, str]],
    event_bus: EventBus,
    sessions: SessionFactory,
) -> None:
    build = await submit_build(api, actors["owner"], ONE_REF)
    await mark_ready(event_bus, sessions, build["id"])
    task = await get_task(api, actors["node"], ["x86_64"])
    assert task is not None
    await api.post(
        f"{NODE}/build_done",
        json={"task_id": task["id"], "status": "done", "artifacts": []},
        headers=actors["node"],
    )
    await store(event_bus, sessions, task["id"], error="Pulp answered 400 for artifact /x/")
    view = await build_of(api, actors["owner"], build["id"])
    assert view["status"] == "failed"
    assert view["tasks"][0]["status"] == 3
    assert "Pulp answered 400" in view["tasks"][0]["error"]
    async with sessions() as session:
        assert await session.scalar(text("SELECT count(*) FROM build_task_dependency")) == 0
