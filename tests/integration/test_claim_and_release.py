"""The one-statement claim, stored Task bodies and build completion, on the real PostgreSQL.

Scheduler functions are called directly (no broker): what is checked here is what the
database guarantees when several replicas run them at once.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import delete, func, null, select, update
from sqlalchemy.engine import make_url

from scheduler import assignment, platforms, release
from scheduler.assignment import CLAIM_NEXT_TASKS, Claim, ClaimPool
from scheduler.planning import plan_build
from shared import correlation
from shared.contracts.build_node import BuildTaskArtifactsStored, BuildTaskAssigned, Task
from shared.contracts.builds import BuildCreate, BuildReposReady
from shared.contracts.messages import Actor
from shared.contracts.platforms import PlatformCreate, PlatformModify
from shared.db.models import (
    Build,
    BuildTask,
    BuildTaskStatus,
    OutboxMessage,
    Repository,
    User,
    build_repo,
    build_task_dependency,
)
from shared.db.models.builds import UNSETTLED
from shared.db.session import SessionFactory, in_transaction, unit_of_work
from shared.messaging.outbox import NOTIFY_CHANNEL

pytestmark = pytest.mark.usefixtures("clean_db")
REPOS = [
    {"name": "baseos", "arch": "x86_64", "url": "https://m.example.org/x86_64/", "type": "rpm"},
    {"name": "baseos", "arch": "i686", "url": "https://m.example.org/i686/", "type": "rpm"},
]


@pytest.fixture
async def actor(sessions: SessionFactory) -> Actor:
    async with unit_of_work(sessions) as session:
        user = User(username="jdoe", email="jdoe@example.org")
        session.add(user)
        await session.flush()
        admin = Actor(user_id=user.id, name="jdoe", is_admin=True)
        await platforms.create_platform(
            session,
            admin,
            PlatformCreate.model_validate(
                {
                    "name": "P",
                    "type": "rpm",
                    "distr_type": "rhel",
                    "distr_version": "8",
                    "test_dist_name": "almalinux",
                    "arch_list": ["x86_64", "i686"],
                    "repos": REPOS,
                    "data": {"mock": {"package_manager": "dnf"}, "yum": {}, "definitions": {}},
                }
            ),
        )
    return admin


@pytest.fixture
async def pools(database_url: str) -> AsyncIterator[list[ClaimPool]]:
    """Two claim pools, as two scheduler replicas have."""
    replicas = [ClaimPool(database_url, 2), ClaimPool(database_url, 2)]
    for pool in replicas:
        await pool.start()
    yield replicas
    for pool in replicas:
        await pool.stop()


async def ready_build(
    sessions: SessionFactory, actor: Actor, refs: int, arches: list[str], *, chained: bool = True
) -> list[int]:
    """A planned build whose repositories exist; its task ids in planning order."""
    request = BuildCreate.model_validate(
        {
            "platforms": [{"name": "P", "arch_list": arches}],
            "tasks": [{"url": f"https://git.example.org/r{n}.git"} for n in range(refs)],
        }
    )
    async with unit_of_work(sessions) as session:
        build = await plan_build(session, actor, request)
        ids = list(
            await session.scalars(
                select(BuildTask.id).where(BuildTask.build_id == build.id).order_by(BuildTask.id)
            )
        )
        if not chained:
            await session.execute(
                delete(build_task_dependency).where(build_task_dependency.c.task_id.in_(ids))
            )
    await in_transaction(sessions, release.mark_repos_ready, BuildReposReady(build_id=build.id))
    return ids


async def stored_body(sessions: SessionFactory, task_id: int) -> Any:
    async with sessions() as session:
        return await session.scalar(select(BuildTask.task_body).where(BuildTask.id == task_id))


async def outbox(sessions: SessionFactory, routing_key: str) -> list[dict[str, Any]]:
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage.payload)
            .where(OutboxMessage.routing_key == routing_key)
            .order_by(OutboxMessage.id)
        )
        return list(rows)


async def assign(pool: ClaimPool, sessions: SessionFactory, claim: Claim) -> Any:
    """The claimed Task body, parsed; None when nothing was claimed."""
    body = await assignment.assign_next_task(pool, sessions, claim)
    return None if body is None else json.loads(body)


def claim(node: str | None = "n1", arches: list[str] | None = None) -> Claim:
    return Claim(arches=arches or ["x86_64", "i686"], node_id=node, lease_seconds=300)


async def test_a_claim_returns_the_stored_body_and_records_the_assignment(
    sessions: SessionFactory, actor: Actor, pools: list[ClaimPool]
) -> None:
    first, *_ = await ready_build(sessions, actor, refs=2, arches=["x86_64"])
    body = await assign(pools[0], sessions, claim("builder-7"))
    assert body is not None
    assert body == await stored_body(sessions, first)
    task = Task.model_validate(body)
    assert (task.id, task.arch, task.ref.url) == (first, "x86_64", "https://git.example.org/r0.git")
    assert [r.url for r in task.repositories] == ["https://m.example.org/x86_64/"]
    async with sessions() as session:
        row = await session.get(BuildTask, first)
    assert row is not None
    assert (row.status, row.attempt, row.node_id) == (BuildTaskStatus.STARTED, 1, "builder-7")
    [event] = await outbox(sessions, "build_task.assigned")
    assigned = BuildTaskAssigned.model_validate(event)
    assert (assigned.task_id, assigned.build_id, assigned.attempt) == (first, row.build_id, 1)
    assert (assigned.arch, assigned.node_id) == ("x86_64", "builder-7")
    # The second ref waits for the first: nothing else is runnable.
    assert await assign(pools[0], sessions, claim()) is None
    assert await assign(pools[0], sessions, claim(arches=["ppc64le"])) is None


async def test_the_assigned_event_carries_the_requests_correlation_id(
    sessions: SessionFactory, actor: Actor, pools: list[ClaimPool]
) -> None:
    await ready_build(sessions, actor, refs=1, arches=["x86_64"])
    token = correlation.bind("get-task-request-1")
    try:
        assert await assign(pools[0], sessions, claim()) is not None
    finally:
        correlation.unbind(token)
    async with sessions() as session:
        ids = await session.scalars(
            select(OutboxMessage.correlation_id).where(
                OutboxMessage.routing_key == "build_task.assigned"
            )
        )
        assert list(ids) == ["get-task-request-1"]


async def test_concurrent_claims_of_two_replicas_hand_out_each_task_once(
    sessions: SessionFactory, actor: Actor, pools: list[ClaimPool]
) -> None:
    tasks = await ready_build(sessions, actor, refs=30, arches=["x86_64"], chained=False)
    answers = await asyncio.gather(
        *(assign(pools[n % 2], sessions, claim(f"n{n}")) for n in range(len(tasks) + 10))
    )
    given = [a["id"] for a in answers if a is not None]
    assert sorted(given) == tasks
    events = await outbox(sessions, "build_task.assigned")
    assert sorted(e["task_id"] for e in events) == tasks


async def test_requests_claimed_together_each_get_their_own_task_and_event(
    sessions: SessionFactory, actor: Actor, pools: list[ClaimPool]
) -> None:
    tasks = await ready_build(sessions, actor, refs=5, arches=["x86_64"], chained=False)

    async def request(n: int) -> tuple[str, Any]:
        token = correlation.bind(f"request-{n}")
        try:
            arches = ["ppc64le"] if n % 3 == 0 else ["x86_64"]
            return f"n{n}", await assign(pools[0], sessions, claim(f"n{n}", arches))
        finally:
            correlation.unbind(token)

    answers = await asyncio.gather(*(request(n) for n in range(12)))
    given = {node: body["id"] for node, body in answers if body is not None}
    assert sorted(given.values()) == tasks
    assert all(node not in given for node in ("n0", "n3", "n6", "n9"))  # ppc64le: none built
    async with sessions() as session:
        rows = await session.execute(
            select(BuildTask.id, BuildTask.node_id).where(BuildTask.id.in_(tasks))
        )
        assert {node: task for task, node in rows} == given
        events = await session.execute(
            select(OutboxMessage.payload, OutboxMessage.correlation_id).where(
                OutboxMessage.routing_key == "build_task.assigned"
            )
        )
        assert {e["node_id"]: (e["task_id"], cid) for e, cid in events} == {
            node: (task, f"request-{node[1:]}") for node, task in given.items()
        }


async def test_a_task_made_runnable_before_bodies_were_stored_gets_one_at_claim(
    sessions: SessionFactory, actor: Actor, pools: list[ClaimPool]
) -> None:
    first, *_ = await ready_build(sessions, actor, refs=1, arches=["x86_64"])
    expected = await stored_body(sessions, first)
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(BuildTask).where(BuildTask.id == first).values(task_body=null())
        )
    assert await assign(pools[0], sessions, claim()) == expected
    assert await stored_body(sessions, first) == expected


async def test_a_platform_change_reaches_the_bodies_of_tasks_not_yet_handed_out(
    sessions: SessionFactory, actor: Actor, pools: list[ClaimPool]
) -> None:
    _, second = await ready_build(sessions, actor, refs=2, arches=["x86_64"])
    assert await assign(pools[0], sessions, claim()) is not None
    change = PlatformModify(
        name="P",
        data={"mock": {"package_manager": "dnf5"}, "yum": {}, "definitions": {}},
        repos=[{**REPOS[0], "url": "https://mirror2.example.org/x86_64/"}, REPOS[1]],
    )
    await in_transaction(sessions, platforms.modify_platform, actor, change)
    body = await stored_body(sessions, second)
    assert body["platform"]["data"]["mock"] == {"package_manager": "dnf5"}
    assert body["repositories"] == [
        {"name": "baseos", "url": "https://mirror2.example.org/x86_64/"}
    ]


async def test_a_linked_builds_repositories_reach_bodies_stored_before_they_existed(
    sessions: SessionFactory, actor: Actor
) -> None:
    request = BuildCreate.model_validate(
        {
            "platforms": [{"name": "P", "arch_list": ["x86_64"]}],
            "tasks": [{"url": "https://x/l.git"}],
        }
    )
    async with unit_of_work(sessions) as session:
        linked = await plan_build(session, actor, request)
        linking = await plan_build(
            session, actor, request.model_copy(update={"linked_builds": [linked.id]})
        )
        [task] = await session.scalars(select(BuildTask.id).where(BuildTask.build_id == linking.id))
    await in_transaction(sessions, release.mark_repos_ready, BuildReposReady(build_id=linking.id))
    assert [r["name"] for r in (await stored_body(sessions, task))["repositories"]] == ["baseos"]
    async with unit_of_work(sessions) as session:
        repo = Repository(name="l-br", arch="x86_64", url="http://pulp/l-br/", type="rpm")
        session.add(repo)
        await session.flush()
        await session.execute(build_repo.insert().values(build_id=linked.id, repository_id=repo.id))
    await in_transaction(sessions, release.mark_repos_ready, BuildReposReady(build_id=linked.id))
    body = await stored_body(sessions, task)
    assert [r["name"] for r in body["repositories"]] == ["baseos", "l-br"]
    assert body["linked_builds"] == [linked.id]


async def finish(sessions: SessionFactory, task_ids: list[int]) -> None:
    """As build_done does: the tasks' first attempt finished."""
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(BuildTask)
            .where(BuildTask.id.in_(task_ids))
            .values(status=BuildTaskStatus.COMPLETED, attempt=1, lease_expires_at=None)
        )


async def build_of(sessions: SessionFactory, task_id: int) -> int:
    async with sessions() as session:
        build_id = await session.scalar(select(BuildTask.build_id).where(BuildTask.id == task_id))
    assert build_id is not None
    return build_id


async def stored(sessions: SessionFactory, build_id: int, task_id: int) -> None:
    event = BuildTaskArtifactsStored(task_id=task_id, build_id=build_id, attempt=1)
    await in_transaction(sessions, release.release_task, event)


async def test_a_build_completes_once_when_its_tasks_are_stored_concurrently(
    sessions: SessionFactory, actor: Actor
) -> None:
    for _ in range(3):
        tasks = await ready_build(sessions, actor, refs=6, arches=["x86_64"], chained=False)
        build_id = await build_of(sessions, tasks[0])
        await finish(sessions, tasks)
        await asyncio.gather(*(stored(sessions, build_id, t) for t in tasks))
        completed = [
            e for e in await outbox(sessions, "build.completed") if e["build_id"] == build_id
        ]
        assert len(completed) == 1
        assert completed[0]["status"] == "completed"
        assert completed[0]["tasks_by_status"] == {"completed": 6}


async def test_another_builds_unstored_task_does_not_hold_a_build_back(
    sessions: SessionFactory, actor: Actor
) -> None:
    [other] = await ready_build(sessions, actor, refs=1, arches=["x86_64"])
    [mine] = await ready_build(sessions, actor, refs=1, arches=["x86_64"])
    await finish(sessions, [other, mine])  # other's artifacts are never stored
    build_id = await build_of(sessions, mine)
    await stored(sessions, build_id, mine)
    assert [e["build_id"] for e in await outbox(sessions, "build.completed")] == [build_id]
    async with sessions() as session:
        assert await session.scalar(select(Build.completed_at).where(Build.id == build_id))


async def test_storing_a_task_releases_only_dependents_with_nothing_else_to_wait_for(
    sessions: SessionFactory, actor: Actor
) -> None:
    t1, t2, t3, t4 = await ready_build(sessions, actor, refs=2, arches=["x86_64", "i686"])
    await finish(sessions, [t1])
    await stored(sessions, await build_of(sessions, t1), t1)
    async with sessions() as session:
        runnable = set(
            await session.scalars(
                select(BuildTask.id).where(BuildTask.id.in_([t2, t3, t4]), BuildTask.runnable)
            )
        )
        assert (
            await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.routing_key == "build.completed")
            )
            == 0
        )
    assert runnable == {t2, t3}  # t4 still waits for t2 and t3


async def plan_of(database_url: str, statement: str, *args: object) -> str:
    """The plan PostgreSQL picks when a sequential scan is not an option."""
    url = make_url(database_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        await conn.execute("SET enable_seqscan = off")
        rows = await conn.fetch(f"EXPLAIN {statement}", *args)
        return "\n".join(row[0] for row in rows)
    finally:
        await conn.close()


async def test_the_hot_statements_can_use_their_partial_indexes(database_url: str) -> None:
    claim_plan = await plan_of(
        database_url,
        CLAIM_NEXT_TASKS,
        ["x86_64"],
        300.0,
        ["n1", "n2"],
        NOTIFY_CHANNEL,
        [None, None],
    )
    assert "ix_build_tasks_runnable" in claim_plan
    unsettled = f"SELECT EXISTS (SELECT 1 FROM build_tasks WHERE build_id = 1 AND ({UNSETTLED}))"
    assert "ix_build_tasks_unsettled" in await plan_of(database_url, unsettled)
    dependents = "SELECT task_id FROM build_task_dependency WHERE depends_on_id = 1"
    assert "ix_build_task_dependency_depends_on_id" in await plan_of(database_url, dependents)
