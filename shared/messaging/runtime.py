"""What every FastStream service process is made of, and its start/stop sequence."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from faststream import FastStream
from faststream.rabbit import Channel, RabbitBroker, RabbitRouter
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.topology import Topology
from shared.db.readiness import wait_for_database
from shared.db.session import SessionFactory, create_engine, create_session_factory
from shared.messaging.outbox import OutboxRelay
from shared.settings import CommonSettings

Hook = Callable[[], Awaitable[None]]
PREFETCH = 10


@dataclass
class ServiceRuntime:
    name: str
    settings: CommonSettings
    broker: RabbitBroker
    topology: Topology
    engine: AsyncEngine
    sessions: SessionFactory
    relay: OutboxRelay
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)


def create_runtime(name: str, settings: CommonSettings, *, pool_size: int = 10) -> ServiceRuntime:
    # Each message handled would be two INFO lines; at node polling rates that is noise.
    # Prefetch bounds how many messages of one queue a replica works on at once, so work
    # spreads over replicas and never waits long for a database connection.
    broker = RabbitBroker(
        settings.amqp_url,
        logger=logging.getLogger(f"{name}.broker"),
        log_level=logging.DEBUG,
        default_channel=Channel(prefetch_count=PREFETCH),
    )
    topology = Topology(settings.amqp_prefix)
    engine = create_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=settings.db_max_overflow,
        limits=settings.db_limits(),
        application_name=f"albs-{name}",
    )
    sessions = create_session_factory(engine)
    relay = OutboxRelay(sessions, broker, topology, database_url=settings.database_url)
    return ServiceRuntime(name, settings, broker, topology, engine, sessions, relay)


async def declare_topology(broker: RabbitBroker, topology: Topology) -> None:
    await broker.declare_exchange(topology.events)
    dead = await broker.declare_exchange(topology.dead_letters)
    queue = await broker.declare_queue(topology.dead_letter_queue)
    await queue.bind(dead)


def build_app(runtime: ServiceRuntime, routers: Sequence[RabbitRouter]) -> FastStream:
    for router in routers:
        runtime.broker.include_router(router)
    log = logging.getLogger(runtime.name)

    # Everything a handler needs is up before FastStream starts the subscribers, so a
    # replica that cannot finish starting never takes (and loses) a message.
    async def on_startup() -> None:
        await wait_for_database(runtime.engine)
        await runtime.broker.connect()
        await declare_topology(runtime.broker, runtime.topology)
        await runtime.relay.start()
        for hook in runtime.on_start:
            await hook()

    async def after_startup() -> None:
        log.info("%s ready (prefix %s)", runtime.name, runtime.topology.prefix)

    async def on_shutdown() -> None:
        for hook in runtime.on_stop:
            await hook()
        await runtime.relay.stop()

    async def after_shutdown() -> None:
        await runtime.engine.dispose()
        log.info("%s stopped", runtime.name)

    return FastStream(
        runtime.broker,
        logger=log,
        on_startup=[on_startup],
        after_startup=[after_startup],
        on_shutdown=[on_shutdown],
        after_shutdown=[after_shutdown],
    )
