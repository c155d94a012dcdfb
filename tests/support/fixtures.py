"""Fixtures: per-run database, RabbitMQ prefix and Redis prefix on the real servers."""

import asyncio
import secrets
import shutil
import subprocess
import warnings
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import migrate
from shared.db.models import Base
from shared.db.session import SessionFactory, create_engine, create_session_factory
from tests.support.servers import Servers, provide_servers

JWT_SECRET = secrets.token_hex(32)
RABBITMQCTL_SECONDS = 60


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    try:
        yield from provide_servers()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def run_id() -> str:
    return secrets.token_hex(4)


def scratch_database(servers: Servers, name: str, first_build: int) -> Iterator[str]:
    """A database migrated to head, dropped at the end."""
    url = make_url(servers.database_url).set(drivername="postgresql+asyncpg", database=name)
    rendered = url.render_as_string(hide_password=False)
    asyncio.run(migrate.create_database(rendered))
    migrate.upgrade(rendered)
    asyncio.run(_offset_build_ids(rendered, first_build))
    yield rendered
    asyncio.run(migrate.drop_database(rendered))


def scratch_prefix(servers: Servers, prefix: str) -> Iterator[str]:
    yield prefix
    asyncio.run(delete_queues(servers.amqp_url, prefix))


NO_PULP_POOL = {
    "ALBS_PULP_POOL_RPM": "0",
    "ALBS_PULP_POOL_RPM_SRC": "0",
    "ALBS_PULP_POOL_LOGS": "0",
}


def env_of(servers: Servers, database_url: str, prefix: str) -> dict[str, str]:
    """The ALBS_* settings of services that use this database and this prefix."""
    return {
        "ALBS_DATABASE_URL": database_url,
        "ALBS_AMQP_URL": servers.amqp_url,
        "ALBS_AMQP_PREFIX": prefix,
        "ALBS_REDIS_URL": servers.redis_url,
        "ALBS_REDIS_PREFIX": prefix,
        "ALBS_MQTT_QUEUE_HOST": servers.mqtt_host,
        "ALBS_MQTT_QUEUE_PORT": str(servers.mqtt_port),
        # The refresh would read the real Gitea; its tests point it at a fake one.
        "ALBS_GITEA_REFRESH_ENABLED": "false",
        "ALBS_JWT_SECRET": JWT_SECRET,
        "ALBS_LOG_LEVEL": "INFO",
        # No warm pool of Pulp repositories unless a test asks for one: the shared Pulp
        # outlives the test databases, and a pool per run would be left behind in it.
        **NO_PULP_POOL,
    }


@pytest.fixture(scope="session")
def database_url(servers: Servers, run_id: str) -> Iterator[str]:
    """The database of this test run."""
    yield from scratch_database(servers, f"albs_test_{run_id}", first_build_id(run_id))


@pytest.fixture(scope="session")
def amqp_prefix(servers: Servers, run_id: str) -> Iterator[str]:
    yield from scratch_prefix(servers, f"test-{run_id}")


async def _offset_build_ids(database_url: str, start: int) -> None:
    engine = create_engine(database_url, pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(text(f"ALTER SEQUENCE builds_id_seq RESTART WITH {start}"))
    await engine.dispose()


async def delete_queues(amqp_url: str, prefix: str) -> None:
    """Best effort: remove this run's queues and exchanges (needs rabbitmqctl on this host)."""
    if shutil.which("rabbitmqctl") is None:
        return
    try:
        listed = {
            kind: subprocess.run(
                ["rabbitmqctl", "-q", f"list_{kind}", "name"],
                capture_output=True,
                text=True,
                check=False,
                timeout=RABBITMQCTL_SECONDS,
            ).stdout.split()
            for kind in ("queues", "exchanges")
        }
    except subprocess.TimeoutExpired:
        # A wedged broker CLI must not hold the run's end forever; the tests have reported.
        warnings.warn(f"rabbitmqctl did not list within {RABBITMQCTL_SECONDS} s", stacklevel=1)
        return
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in listed["queues"]:
            if name.startswith(prefix):
                await channel.queue_delete(name)
        for name in listed["exchanges"]:
            if name.startswith(prefix):
                await channel.exchange_delete(name)


@pytest.fixture(scope="session")
def service_env(servers: Servers, database_url: str, amqp_prefix: str) -> dict[str, str]:
    """The ALBS_* settings every in-process service of this test run gets."""
    return env_of(servers, database_url, amqp_prefix)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> SessionFactory:
    return create_session_factory(engine)


def first_build_id(run_id: str, offset: int = 0) -> int:
    """Build ids of this run start here: Pulp repository names carry the build id, and the
    Pulp server outlives test databases, so runs must not reuse ids."""
    return (int(run_id, 16) % 1_000_000) * 2000 + offset + 1


@pytest.fixture
async def clean_db(engine: AsyncEngine, run_id: str) -> None:
    """Empty every table before the test, so tests never see each other's rows."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await conn.execute(
            text(f"ALTER SEQUENCE builds_id_seq RESTART WITH {first_build_id(run_id)}")
        )
