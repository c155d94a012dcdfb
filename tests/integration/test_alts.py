"""Test tasks with ALTS: created after a task's packages are stored, sent to a fake ALTS on
loopback, results posted back through the gateway, read and restarted as the frontend does.

Its own database (its schedulers send to the fake ALTS; the run's other relays must not
publish its events) and its own RabbitMQ prefix.
"""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from faststream import FastStream
from sqlalchemy import select, text

from api_gateway.main import create_app as create_gateway
from api_gateway.settings import GatewaySettings
from artifacts.alts_logs import TEST_LOG_REPO, alts_log_repo_name
from auth.settings import AuthSettings
from auth.users import ensure_user, token_for
from scheduler.checks import schedule_body
from scheduler.main import create_app as create_scheduler
from scheduler.settings import SchedulerSettings
from shared.contracts.topology import Topology
from shared.db.models import Repository, TestTask, TestTaskStatus, UserKind
from shared.db.session import SessionFactory, create_engine, create_session_factory, in_transaction
from shared.rpm_names import Nevra
from tests.support.artifacts import (
    PULP_WAIT_SECONDS,
    insert_build,
    remove_pulp_repositories,
    running_artifacts,
)
from tests.support.builds import create_platform, get_task, platform_body, submit_build
from tests.support.fake_alts import AltsWorker, FakeAlts
from tests.support.fixtures import first_build_id, scratch_database
from tests.support.processes import free_port
from tests.support.pulp_node import PulpServer, upload_artifact
from tests.support.rpms import RpmFactory
from tests.support.servers import Servers
from tests.support.stack import bearer, settings_for
from tests.support.waiting import eventually

ALTS_TOKEN = "alts-own-secret-" + uuid.uuid4().hex
# Posting a result with a log uploaded to Pulp takes seconds on a loaded machine.
PATIENT = 600.0
IMPATIENT = 3.0
Headers = dict[str, str]


@pytest.fixture(scope="module")
def alts_database(servers: Servers, run_id: str) -> Iterator[str]:
    first = first_build_id(run_id, 2300)
    for url in scratch_database(servers, f"albs_test_{run_id}_alts", first):
        # Test log repositories are named by build task id, and Pulp is shared by every run.
        asyncio.run(_restart_task_ids(url, first))
        yield url


async def _restart_task_ids(database_url: str, start: int) -> None:
    engine = create_engine(database_url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text(f"ALTER SEQUENCE build_tasks_id_seq RESTART WITH {start}"))
    await engine.dispose()


@pytest.fixture(scope="module")
async def alts_env(
    service_env: dict[str, str], servers: Servers, amqp_prefix: str, alts_database: str
) -> AsyncIterator[dict[str, str]]:
    prefix = f"{amqp_prefix}-alts{uuid.uuid4().hex[:4]}"
    yield {**service_env, "ALBS_AMQP_PREFIX": prefix, "ALBS_DATABASE_URL": alts_database}
    topology = Topology(prefix)
    connection = await aio_pika.connect(servers.amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in [*topology.event_queues(), *topology.rpc_queues(), topology.dead_letter_queue]:
            await channel.queue_delete(queue.name)


@pytest.fixture(scope="module")
async def alts_sessions(alts_database: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(alts_database, pool_size=2)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
async def api(alts_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    gateway = create_gateway(settings_for(GatewaySettings, alts_env, rpc_timeout_seconds=10))
    async with gateway.router.lifespan_context(gateway):
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield client


@pytest.fixture(scope="module")
async def who(alts_env: dict[str, str], alts_sessions: SessionFactory) -> dict[str, Headers]:
    settings = settings_for(AuthSettings, alts_env)

    async def token(name: str, kind: UserKind = UserKind.USER, admin: bool = False) -> Headers:
        user = await in_transaction(
            alts_sessions, ensure_user, name, email=f"{name}@example.org", kind=kind, admin=admin
        )
        return bearer(token_for(user, settings))

    return {
        "admin": await token("root", admin=True),
        "owner": await token("owner"),
        "other": await token("other"),
        "node": await token("node", UserKind.NODE),
        "alts": await token("alts", UserKind.SERVICE),
    }


@asynccontextmanager
async def schedulers(
    env: dict[str, str], count: int, alts_url: str, **overrides: Any
) -> AsyncIterator[list[FastStream]]:
    values: dict[str, Any] = {
        "db_pool_size": 2,
        "alts_url": alts_url,
        "alts_token": ALTS_TOKEN,
        "alts_timeout_seconds": 2,
        "alts_dispatch_interval_seconds": 0.2,
        "alts_retry_base_seconds": 0.2,
        "alts_retry_max_seconds": 1,
        "test_result_timeout_seconds": PATIENT,
        "test_timeout_interval_seconds": 0.5,
    }
    settings = settings_for(SchedulerSettings, env, **(values | overrides))
    apps = [create_scheduler(settings) for _ in range(count)]
    for app in apps:
        await app.start()
    try:
        yield apps
    finally:
        for app in apps:
            await app.stop()


@asynccontextmanager
async def alts_worker(
    alts: FakeAlts,
    api: httpx.AsyncClient,
    who: dict[str, Headers],
    pulp: httpx.AsyncClient,
    log_dir: Path,
) -> AsyncIterator[AltsWorker]:
    token = who["alts"]["Authorization"].removeprefix("Bearer ")
    worker = AltsWorker(alts, api, token, pulp, log_dir)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


async def latest(api: httpx.AsyncClient, who: Headers, build_task_id: int) -> list[dict[str, Any]]:
    answer = await api.get(f"/api/v1/tests/{build_task_id}/latest", headers=who)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


async def settled_revision(
    api: httpx.AsyncClient, who: Headers, build_task_id: int, revision: int, count: int
) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]]:
        tests = await latest(api, who, build_task_id)
        finished = [t for t in tests if t["revision"] == revision and t["status"] in (3, 4)]
        return tests if len(finished) == count else []

    return await eventually(probe, timeout=PULP_WAIT_SECONDS, every=0.3)


@pytest.mark.pulp
async def test_a_done_task_is_tested_by_alts_and_the_frontend_reads_and_restarts_it(
    alts_env: dict[str, str],
    alts_sessions: SessionFactory,
    api: httpx.AsyncClient,
    who: dict[str, Headers],
    pulp_server: PulpServer,
    pulp_http: httpx.AsyncClient,
    servers: Servers,
    rpms: RpmFactory,
    run_id: str,
    tmp_path: Path,
) -> None:
    package = f"alts{run_id}"
    alts = FakeAlts(ALTS_TOKEN, failing_packages={f"{package}-data"})
    platform = f"T{run_id}-alts-{uuid.uuid4().hex[:4]}"
    task_id = 0
    pulp = pulp_http
    alts_url = alts.start()
    try:
        async with (
            running_artifacts(
                alts_env,
                servers,
                alts_env["ALBS_AMQP_PREFIX"],
                pulp_url=pulp_server.url,
                pulp_user=pulp_server.user,
                pulp_password=pulp_server.password,
            ),
            schedulers(alts_env, 1, alts_url),
            alts_worker(alts, api, who, pulp, tmp_path) as worker,
        ):
            await create_platform(api, who["admin"], platform_body(platform, ["x86_64"]))
            build = await submit_build(
                api,
                who["owner"],
                {
                    "platforms": [{"name": platform, "arch_list": ["x86_64"]}],
                    "tasks": [{"url": "https://git.example.org/rpms/hello.git"}],
                },
            )
            task_id = build["tasks"][0]["id"]
            assert await latest(api, who["owner"], task_id) == []  # an existing task: no 404

            async def assigned() -> dict[str, Any]:
                return await get_task(api, who["node"], ["x86_64"]) or {}

            task = await eventually(assigned, timeout=PULP_WAIT_SECONDS, every=0.5)
            assert task["id"] == task_id
            built = rpms(name=package)
            artifacts = [
                {"name": p.name, "type": "rpm", "href": await upload_artifact(pulp, p)}
                for p in built.all
            ]
            done = await api.post(
                "/api/v1/build_node/build_done",
                json={"task_id": task_id, "status": "done", "artifacts": artifacts},
                headers=who["node"],
            )
            assert done.status_code == 200, done.text

            # One test per binary package (not the SRPM, not debuginfo), results from ALTS.
            tests = await settled_revision(api, who["owner"], task_id, 1, 2)
            by_name = {t["package_name"]: t for t in tests}
            assert set(by_name) == {package, f"{package}-data"}
            assert by_name[package]["status"] == TestTaskStatus.COMPLETED, (tests, worker.posted)
            assert by_name[f"{package}-data"]["status"] == TestTaskStatus.FAILED
            assert {(t["package_version"], t["package_release"]) for t in tests} == {("1.0", "1")}
            sent = [s.body for s in alts.snapshot()]
            assert Counter(b["callback_href"] for b in sent) == Counter(
                f"/api/v1/tests/{t['id']}/result/" for t in tests
            )
            assert {(b["dist_name"], b["dist_version"], b["dist_arch"]) for b in sent} == {
                ("almalinux", "8", "x86_64")
            }
            assert [r["name"] for r in sent[0]["repositories"]] == [
                f"{platform}-x86_64-{build['id']}-br"
            ]
            assert all(t["alts_reply"]["success"] for t in tests)

            # The log, imported into the revision's repository, is served where the
            # frontend reads it.
            log_name = by_name[package]["alts_response"]["result"]["logs"][0]["name"]
            repo_name = alts_log_repo_name(task_id, 1)
            assert repo_name in (await _log_url(alts_sessions, repo_name))
            log_url = await _log_url(alts_sessions, repo_name) + log_name

            async def served() -> str:
                async with httpx.AsyncClient(timeout=30) as client:
                    answer = await client.get(log_url)
                return answer.text if answer.status_code == 200 else ""

            assert package in await eventually(served, timeout=PULP_WAIT_SECONDS, every=0.5)

            # A repeated result changes nothing; only ALTS may post one; bad ones are refused.
            failed_id = by_name[f"{package}-data"]["id"]
            again = await api.post(
                f"/api/v1/tests/{failed_id}/result/",
                json={"api_version": "1", "result": {"tests": {"t": {"success": True}}}},
                headers=who["alts"],
            )
            assert again.json() == {"ok": True}
            assert {t["id"]: t["status"] for t in await latest(api, who["owner"], task_id)}[
                failed_id
            ] == TestTaskStatus.FAILED
            for headers, status in ((who["node"], 403), (who["owner"], 403)):
                refused = await api.post(
                    f"/api/v1/tests/{failed_id}/result/",
                    json={"api_version": "1", "result": {}},
                    headers=headers,
                )
                assert refused.status_code == status
            unknown = await api.post(
                "/api/v1/tests/999999/result/",
                json={"api_version": "1", "result": {}},
                headers=who["alts"],
            )
            assert unknown.status_code == 404
            malformed = await api.post(
                f"/api/v1/tests/{failed_id}/result/",
                json={"api_version": "1", "result": {"logs": [{"name": "x.log"}]}},
                headers=who["alts"],
            )
            assert malformed.status_code == 422, malformed.text

            # Restart one task's tests: a new revision; ALTS's log upload failed (logs null).
            restart = f"/api/v1/tests/build_task/{task_id}/restart"
            assert (await api.put(restart, headers=who["other"])).status_code == 403
            alts.mode = "no_logs"
            assert (await api.put(restart, headers=who["owner"])).json() == {"ok": True}
            second = await settled_revision(api, who["owner"], task_id, 2, 2)
            assert all(t["alts_response"]["result"]["logs"] is None for t in second)
            older = await api.get(f"/api/v1/tests/{task_id}/1", headers=who["owner"])
            assert {t["id"] for t in older.json()} == {t["id"] for t in tests}

            # The whole build's tests again; ALTS never answers: they fail after the timeout
            # (that a second replica applies: any replica may).
            alts.mode = "silent"
            build_restart = f"/api/v1/tests/build/{build['id']}/restart"
            async with schedulers(alts_env, 1, alts_url, test_result_timeout_seconds=IMPATIENT):
                assert (await api.put(build_restart, headers=who["admin"])).json() == {"ok": True}
                third = await settled_revision(api, who["owner"], task_id, 3, 2)
            assert {t["status"] for t in third} == {TestTaskStatus.FAILED}
            assert all("No result from ALTS" in t["error"] for t in third)
            assert all(t["alts_response"] is None for t in third)

            missing = await api.get("/api/v1/tests/999999/latest", headers=who["owner"])
            assert missing.status_code == 404
            gone = await api.put("/api/v1/tests/build/999999/restart", headers=who["owner"])
            assert gone.status_code == 404

            # Deleting the build deletes its test log repositories in Pulp too (§11.22).
            removed = await api.delete(f"/api/v1/builds/{build['id']}/remove", headers=who["owner"])
            assert removed.status_code == 204, removed.text
            log_repos = [alts_log_repo_name(task_id, revision) for revision in (1, 2, 3)]

            async def logs_gone() -> bool:
                for name in log_repos:
                    found = await pulp.get(
                        "/pulp/api/v3/repositories/file/file/", params={"name": name}
                    )
                    if found.raise_for_status().json()["count"]:
                        return False
                return True

            await eventually(logs_gone, timeout=PULP_WAIT_SECONDS, every=0.5)
    finally:
        alts.stop()
        logs = [alts_log_repo_name(task_id, revision) for revision in (1, 2, 3) if task_id]
        await remove_pulp_repositories(
            pulp_server, [f"{platform}-"], names=[(TEST_LOG_REPO, name) for name in logs]
        )


async def test_alts_down_then_up_gets_each_test_once_from_two_replicas_within_the_limit(
    alts_env: dict[str, str],
    alts_sessions: SessionFactory,
    api: httpx.AsyncClient,
    who: dict[str, Headers],
    run_id: str,
    tmp_path: Path,
) -> None:
    planned = await insert_build(
        alts_sessions, f"T{run_id}-altsdown-{uuid.uuid4().hex[:4]}", ["x86_64"]
    )
    task_id = planned.task_ids["x86_64"]
    ids = await _insert_tests(alts_sessions, task_id, count=12)
    alts = FakeAlts(ALTS_TOKEN, port=free_port(), mode="no_logs")  # nothing listens there yet
    alts_url = f"http://127.0.0.1:{alts.port}"
    async with schedulers(alts_env, 2, alts_url, alts_max_in_flight=5):

        async def all_tried() -> list[dict[str, Any]]:
            tests = await latest(api, who["owner"], task_id)
            tried = [t for t in tests if t["dispatch_attempts"] >= 1 and t["error"]]
            return tests if len(tried) == len(ids) else []

        tests = await eventually(all_tried, timeout=60, every=0.3)
        assert {t["status"] for t in tests} == {TestTaskStatus.CREATED}
        assert all("ALTS is unreachable" in t["error"] for t in tests)

        alts.start()
        try:

            async def limit_reached() -> bool:
                return len(alts.snapshot()) >= 5

            await eventually(limit_reached, timeout=60)
            await asyncio.sleep(2)  # several passes of both replicas
            assert len(alts.snapshot()) == 5, "more tests in flight than alts_max_in_flight"

            async with alts_worker(alts, api, who, _no_pulp(), tmp_path):

                async def all_answered() -> list[dict[str, Any]]:
                    tests = await latest(api, who["owner"], task_id)
                    done = [t for t in tests if t["status"] == TestTaskStatus.COMPLETED]
                    return tests if len(done) == len(ids) else []

                tests = await eventually(all_answered, timeout=120, every=0.3)
        finally:
            alts.stop()
    sent = Counter(s.body["callback_href"] for s in alts.snapshot())
    assert sent == Counter(f"/api/v1/tests/{i}/result/" for i in ids)  # each exactly once
    assert alts.refused == 0
    assert all(t["error"] is None and t["alts_reply"]["success"] for t in tests)


async def _insert_tests(sessions: SessionFactory, build_task_id: int, count: int) -> list[int]:
    async with sessions() as session, session.begin():
        rows = [
            TestTask(
                build_task_id=build_task_id,
                package_name=f"pkg{n}",
                package_version="1.0",
                package_release="1",
                env_arch="x86_64",
                status=TestTaskStatus.CREATED,
                revision=1,
            )
            for n in range(count)
        ]
        session.add_all(rows)
        await session.flush()
        for row in rows:
            row.schedule_body = schedule_body(
                row.id,
                dist_name="almalinux",
                dist_version="8",
                arch="x86_64",
                package=Nevra(row.package_name, None, "1.0", "1", "x86_64"),
                repositories=[],
            )
        return [row.id for row in rows]


def _no_pulp() -> httpx.AsyncClient:
    """The worker of a test whose results carry no logs never calls Pulp."""
    return httpx.AsyncClient(base_url="http://127.0.0.1:9")


async def _log_url(sessions: SessionFactory, repo_name: str) -> str:
    async with sessions() as session:
        url = await session.scalar(select(Repository.url).where(Repository.name == repo_name))
    assert url is not None, f"no repository {repo_name}"
    return url


async def test_a_test_alts_refuses_fails_with_alts_words(
    alts_env: dict[str, str],
    alts_sessions: SessionFactory,
    api: httpx.AsyncClient,
    who: dict[str, Headers],
    run_id: str,
) -> None:
    planned = await insert_build(
        alts_sessions, f"T{run_id}-altsno-{uuid.uuid4().hex[:4]}", ["x86_64"]
    )
    task_id = planned.task_ids["x86_64"]
    [refused_id] = await _insert_tests(alts_sessions, task_id, count=1)
    async with alts_sessions() as session, session.begin():
        row = await session.get(TestTask, refused_id)
        assert row is not None
        row.schedule_body = {"runner_type": "docker"}  # no callback: ALTS answers 400
    alts = FakeAlts(ALTS_TOKEN)
    alts_url = alts.start()
    try:
        async with schedulers(alts_env, 1, alts_url):

            async def settled() -> list[dict[str, Any]]:
                tests = await latest(api, who["owner"], task_id)
                return tests if tests[0]["status"] == TestTaskStatus.FAILED else []

            [test] = await eventually(settled, timeout=60, every=0.3)
    finally:
        alts.stop()
    assert test["error"] == "ALTS answered 400: no callback"
    assert test["dispatch_attempts"] == 1
    assert alts.snapshot() == []
