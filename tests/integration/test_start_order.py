"""An event never depends on which service started first (issue 10, first point).

The gateway and the scheduler run; the artifacts service has never run on this prefix. A
build is created: its `build.created` waits in the artifacts queue that the others declared.
Artifacts starts later and the build proceeds to "repositories ready".
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import aio_pika
import httpx
import pytest
from sqlalchemy import select

from api_gateway.main import create_app as create_gateway
from api_gateway.settings import GatewaySettings
from artifacts.main import create_app as create_artifacts
from artifacts.settings import ArtifactsSettings
from auth.settings import AuthSettings
from auth.users import ensure_user, token_for
from scheduler.main import create_app as create_scheduler
from scheduler.settings import SchedulerSettings
from shared.contracts.builds import BuildCreated
from shared.contracts.topology import Topology
from shared.db.models import Build, UserKind
from shared.db.session import SessionFactory, create_engine, create_session_factory, in_transaction
from tests.support.artifacts import PULP_WAIT_SECONDS, remove_pulp_repositories
from tests.support.builds import create_platform, platform_body
from tests.support.fixtures import first_build_id, scratch_database
from tests.support.pulp_node import PulpServer
from tests.support.servers import Servers
from tests.support.stack import bearer, settings_for
from tests.support.waiting import eventually

pytestmark = pytest.mark.pulp
LATER_SECONDS = 3.0


@pytest.fixture
def late_database(servers: Servers, run_id: str) -> Iterator[str]:
    """A database of its own: the relays of this run's other services must not publish the
    test's events under their own prefix."""
    yield from scratch_database(servers, f"albs_test_{run_id}_late", first_build_id(run_id, 1900))


@pytest.fixture
async def late_sessions(late_database: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(late_database, pool_size=2)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def fresh_env(
    service_env: dict[str, str], servers: Servers, amqp_prefix: str, late_database: str
) -> AsyncIterator[dict[str, str]]:
    prefix = f"{amqp_prefix}-late{uuid.uuid4().hex[:4]}"
    yield {**service_env, "ALBS_AMQP_PREFIX": prefix, "ALBS_DATABASE_URL": late_database}
    topology = Topology(prefix)
    connection = await aio_pika.connect(servers.amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in [*topology.event_queues(), *topology.rpc_queues(), topology.dead_letter_queue]:
            await channel.queue_delete(queue.name)


async def queued(servers: Servers, name: str) -> int:
    connection = await aio_pika.connect(servers.amqp_url)
    async with connection:
        queue = await (await connection.channel()).declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)


async def test_a_build_created_before_artifacts_ever_ran_proceeds_when_it_starts(
    fresh_env: dict[str, str],
    servers: Servers,
    late_sessions: SessionFactory,
    pulp_server: PulpServer,
    run_id: str,
) -> None:
    sessions = late_sessions
    root = await in_transaction(
        sessions, ensure_user, "root", email="root@example.org", kind=UserKind.USER, admin=True
    )
    scheduler = create_scheduler(settings_for(SchedulerSettings, fresh_env, db_pool_size=2))
    gateway = create_gateway(settings_for(GatewaySettings, fresh_env, rpc_timeout_seconds=10))
    platform = f"T{run_id}-late-{uuid.uuid4().hex[:4]}"
    await scheduler.start()
    try:
        async with gateway.router.lifespan_context(gateway):
            transport = httpx.ASGITransport(app=gateway)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as api:
                admin = bearer(token_for(root, settings_for(AuthSettings, fresh_env)))
                await create_platform(api, admin, platform_body(platform, ["x86_64"]))
                answer = await api.post(
                    "/api/v1/builds/",
                    headers=admin,
                    json={
                        "platforms": [{"name": platform, "arch_list": ["x86_64"]}],
                        "tasks": [{"url": "https://git.example.org/rpms/bash.git"}],
                    },
                )
                assert answer.status_code == 200, answer.text
                build_id = answer.json()["id"]
        waiting = Topology(fresh_env["ALBS_AMQP_PREFIX"]).event_queue("artifacts", BuildCreated)

        async def in_the_queue() -> bool:
            return await queued(servers, waiting.name) == 1

        await eventually(in_the_queue)
        await asyncio.sleep(LATER_SECONDS)
        assert not await _ready(sessions, build_id)

        artifacts = create_artifacts(
            settings_for(
                ArtifactsSettings,
                fresh_env,
                pulp_url=pulp_server.url,
                pulp_user=pulp_server.user,
                pulp_password=pulp_server.password,
            )
        )
        await artifacts.start()
        try:
            await eventually(lambda: _ready(sessions, build_id), timeout=PULP_WAIT_SECONDS)
        finally:
            await artifacts.stop()
    finally:
        await scheduler.stop()
        await remove_pulp_repositories(pulp_server, [f"{platform}-"])


async def _ready(sessions: SessionFactory, build_id: int) -> bool:
    async with sessions() as session:
        return bool(await session.scalar(select(Build.ready).where(Build.id == build_id)))
