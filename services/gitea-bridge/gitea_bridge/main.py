"""The gitea bridge: Gitea webhook events from MQTT into the project cache and RabbitMQ.

It also refreshes the cache from the Gitea API periodically and, when configured, turns new
tags into builds. Start: RabbitMQ (and the build trigger's subscriber), then MQTT, then the
refresh. Stop: the refresh, MQTT reading, drain what arrived, disconnect, RabbitMQ.
"""

import asyncio
import logging
from dataclasses import dataclass, field

import httpx
from faststream import FastStream
from faststream.rabbit import RabbitBroker
from redis.asyncio import BlockingConnectionPool, Redis

from gitea_bridge.builds import BuildTrigger, build_trigger_router
from gitea_bridge.consumer import Consumer
from gitea_bridge.gitea_api import GiteaApi, api_client
from gitea_bridge.mqtt import MqttConnection, MqttDelivery
from gitea_bridge.pushes import EventPublisher, PushProcessor
from gitea_bridge.refresher import Refresher
from gitea_bridge.settings import GiteaBridgeSettings
from shared.contracts.topology import Topology
from shared.logs import setup_logging
from shared.messaging.observe import observe_middleware
from shared.messaging.poison import poison_middleware
from shared.messaging.runtime import HEALTH_TIMEOUT, declare_topology
from shared.ops_server import OpsServer
from shared.projects_cache import ProjectCache
from shared.settings import load_settings

log = logging.getLogger("gitea_bridge")


@dataclass
class Bridge:
    """What runs while the process runs; built at startup, torn down at shutdown."""

    redis: Redis
    mqtt: MqttConnection | None = None
    refresher: Refresher | None = None
    started: bool = False
    http_clients: list[httpx.AsyncClient] = field(default_factory=list)

    def ack(self, delivery: MqttDelivery) -> None:
        if self.mqtt is not None:
            self.mqtt.ack(delivery)


def create_app(settings: GiteaBridgeSettings | None = None) -> FastStream:
    settings = settings or load_settings(GiteaBridgeSettings)
    broker = RabbitBroker(settings.amqp_url, logger=logging.getLogger("gitea_bridge.broker"))
    topology = Topology(settings.amqp_prefix)
    broker.add_middleware(observe_middleware(settings.amqp_prefix))
    broker.add_middleware(poison_middleware(topology, settings.max_event_failures))
    # Bursts (a refresh of many repositories) wait for a connection instead of failing.
    redis = Redis(
        connection_pool=BlockingConnectionPool.from_url(
            settings.redis_url, timeout=30, socket_timeout=5, socket_connect_timeout=5
        )
    )
    cache = ProjectCache(redis, settings.redis_prefix)
    publisher = EventPublisher(broker, topology, timeout=settings.publish_timeout_seconds)
    bridge = Bridge(redis)
    consumer = Consumer(
        PushProcessor(cache, publisher),
        ack=bridge.ack,
        dead_letter=publisher.dead_letter,
        max_failures=settings.mqtt_max_failures,
        retry_max_seconds=settings.processing_retry_max_seconds,
    )
    if settings.build_on_tags:
        trigger = BuildTrigger(settings, broker, topology, redis)
        broker.include_router(build_trigger_router(topology, trigger))

    ops = (
        OpsServer(settings.ops_host, settings.ops_port, lambda: health(broker, bridge))
        if settings.ops_port
        else None
    )

    async def on_startup() -> None:
        if ops is not None:
            await ops.start()

    async def after_startup() -> None:
        await declare_topology(broker, topology)
        consumer.start()
        bridge.mqtt = MqttConnection(settings, consumer.deliver)
        await bridge.mqtt.connect()
        if settings.gitea_refresh_enabled:
            bridge.refresher = _refresher(settings, cache, bridge)
            bridge.refresher.start()
        bridge.started = True
        log.info("gitea-bridge ready (prefix %s)", settings.amqp_prefix)

    async def on_shutdown() -> None:
        bridge.started = False
        if bridge.refresher is not None:
            await bridge.refresher.stop()
        if bridge.mqtt is not None:
            bridge.mqtt.stop_reading()
        await consumer.stop(settings.shutdown_drain_seconds)
        if bridge.mqtt is not None:
            bridge.mqtt.close()
        for client in bridge.http_clients:
            await client.aclose()
        await redis.aclose()
        if ops is not None:
            await ops.stop()
        log.info("gitea-bridge stopped")

    return FastStream(
        broker,
        logger=log,
        on_startup=[on_startup],
        after_startup=[after_startup],
        on_shutdown=[on_shutdown],
    )


async def health(broker: RabbitBroker, bridge: Bridge) -> tuple[bool, dict[str, str]]:
    """Ready once started with RabbitMQ, MQTT and Redis reachable."""
    try:
        rabbitmq = await broker.ping(timeout=HEALTH_TIMEOUT)
    except Exception:
        rabbitmq = False
    try:
        redis = bool(await asyncio.wait_for(bridge.redis.ping(), HEALTH_TIMEOUT))
    except Exception:
        redis = False
    mqtt = bridge.mqtt is not None and bridge.mqtt.client.is_connected()
    checks = {
        "started": "yes" if bridge.started else "no",
        "rabbitmq": "ok" if rabbitmq else "unreachable",
        "mqtt": "ok" if mqtt else "unreachable",
        "redis": "ok" if redis else "unreachable",
    }
    return bridge.started and rabbitmq and mqtt and redis, checks


def _refresher(settings: GiteaBridgeSettings, cache: ProjectCache, bridge: Bridge) -> Refresher:
    token = settings.gitea_api_token.get_secret_value() if settings.gitea_api_token else None
    client = api_client(settings.gitea_api_url, timeout=settings.gitea_timeout_seconds, token=token)
    bridge.http_clients.append(client)
    api = GiteaApi(
        client,
        page_size=settings.gitea_page_size,
        attempts=settings.gitea_attempts,
        backoff_seconds=settings.gitea_retry_backoff_seconds,
    )
    return Refresher(
        api,
        cache,
        settings.gitea_organizations,
        concurrency=settings.gitea_concurrency,
        interval_seconds=settings.gitea_refresh_interval_seconds,
    )


def main() -> None:
    settings = load_settings(GiteaBridgeSettings)
    setup_logging(settings.log_level, settings.log_format)
    asyncio.run(create_app(settings).run())
