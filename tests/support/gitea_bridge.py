"""The gitea bridge in-process, each test with its own client id, topics, Redis and AMQP prefix."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import pytest
from faststream import FastStream
from redis.asyncio import BlockingConnectionPool, Redis

from gitea_bridge.main import create_app
from gitea_bridge.settings import GiteaBridgeSettings
from shared.contracts.gitea import BranchPushed, TagPushed
from shared.contracts.topology import Topology
from shared.projects_cache import ProjectCache
from tests.support.fake_gitea import FakeGitea
from tests.support.mqtt_clients import drop_session, publish
from tests.support.servers import Servers
from tests.support.stack import settings_for


@dataclass
class BridgeEnv:
    servers: Servers
    settings: GiteaBridgeSettings
    redis: Redis
    cache: ProjectCache
    apps: list[FastStream] = field(default_factory=list)

    @property
    def topology(self) -> Topology:
        return Topology(self.settings.amqp_prefix)

    def configure(self, **overrides: Any) -> GiteaBridgeSettings:
        self.settings = self._with(overrides)
        return self.settings

    async def start(self, **overrides: Any) -> FastStream:
        app = create_app(self._with(overrides))
        await app.start()
        self.apps.append(app)
        return app

    def _with(self, overrides: dict[str, Any]) -> GiteaBridgeSettings:
        """These settings with some changed, validated like any other."""
        return GiteaBridgeSettings(**{**self.settings.model_dump(), **overrides})

    async def stop(self, app: FastStream) -> None:
        await app.stop()
        self.apps.remove(app)

    async def publish(self, topic: str, *payloads: dict[str, Any] | bytes) -> None:
        host, port = self.servers.mqtt_host, self.servers.mqtt_port
        await asyncio.to_thread(publish, host, port, topic, *payloads)

    async def tags(self, full_name: str) -> list[str]:
        project = await self.cache.get(full_name)
        return project.tags if project else []


@pytest.fixture
async def bridge_env(
    servers: Servers, service_env: dict[str, str], amqp_prefix: str
) -> AsyncIterator[BridgeEnv]:
    tag = uuid.uuid4().hex[:8]
    settings = settings_for(
        GiteaBridgeSettings,
        service_env,
        amqp_prefix=f"{amqp_prefix}-{tag}",
        redis_prefix=f"test-bridge-{tag}",
        mqtt_client_id=f"test-bridge-{tag}",
        mqtt_queue_topic_unmodified=f"test-{tag}/gitea-webhooks-unmodified",
        mqtt_queue_topic_modified=f"test-{tag}/gitea-webhooks-modified",
        processing_retry_max_seconds=0.5,
        shutdown_drain_seconds=2,
        gitea_refresh_enabled=False,
    )
    redis = Redis(connection_pool=BlockingConnectionPool.from_url(servers.redis_url))
    env = BridgeEnv(servers, settings, redis, ProjectCache(redis, settings.redis_prefix))
    yield env
    for app in list(env.apps):
        await app.stop()
    await asyncio.to_thread(
        drop_session, servers.mqtt_host, servers.mqtt_port, settings.mqtt_client_id
    )
    async for key in redis.scan_iter(match=f"{settings.redis_prefix}:*"):
        await redis.delete(key)
    await redis.aclose()


@pytest.fixture
async def gitea_events(
    servers: Servers, bridge_env: BridgeEnv
) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """An exclusive queue that sees every `gitea.push` and `gitea.tag` of this test."""
    connection = await aio_pika.connect(servers.amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        bridge_env.topology.events.name, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    for routing_key in (BranchPushed.routing_key, TagPushed.routing_key):
        await queue.bind(exchange, routing_key=routing_key)
    yield queue
    await connection.close()


async def received(
    queue: aio_pika.abc.AbstractQueue, count: int, timeout: float = 15.0
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Exactly the next `count` messages (fails after `timeout` s if fewer arrive)."""
    messages: list[aio_pika.abc.AbstractIncomingMessage] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(messages) < count:
        message = await queue.get(fail=False)
        if message is None:
            if loop.time() > deadline:
                raise AssertionError(f"{len(messages)} of {count} events arrived")
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        messages.append(message)
    return messages


@pytest.fixture(scope="session")
def fake_gitea() -> Iterator[FakeGitea]:
    server = FakeGitea()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gitea(fake_gitea: FakeGitea) -> Iterator[FakeGitea]:
    fake_gitea.reset()
    yield fake_gitea
    fake_gitea.reset()
