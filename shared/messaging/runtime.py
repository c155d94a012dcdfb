"""What every FastStream service process is made of, and its start/stop sequence."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from faststream import FastStream
from faststream.rabbit import Channel, RabbitBroker, RabbitRouter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.topology import Topology
from shared.db.queries.gauges import refresh_outbox_lag
from shared.db.readiness import wait_for_database
from shared.db.session import (
    SessionFactory,
    create_engine,
    create_session_factory,
    in_transaction,
)
from shared.messaging.declare import declare_all
from shared.messaging.observe import observe_middleware
from shared.messaging.outbox import OutboxRelay, RelaySettings
from shared.messaging.poison import poison_middleware
from shared.messaging.retention import Retention, prune
from shared.messaging.rpc_server import RepliesNotMandatory
from shared.ops_server import OpsServer
from shared.periodic import PeriodicJob
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
    # Periodic background jobs, started after the topology and the relay, stopped first.
    jobs: list[PeriodicJob] = field(default_factory=list)
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    # Gauges read from the database when /metrics is scraped (shared/ops_server.py).
    collectors: list[Hook] = field(default_factory=list)
    started: bool = False


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
    # Outermost, so it sees what the poison middleware made of a failure.
    broker.add_middleware(observe_middleware(settings.amqp_prefix))
    broker.add_middleware(poison_middleware(topology, settings.max_event_failures))
    broker.add_middleware(RepliesNotMandatory)
    engine = create_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=settings.db_max_overflow,
        limits=settings.db_limits(),
        application_name=f"albs-{name}",
    )
    sessions = create_session_factory(engine)
    relay = OutboxRelay(
        broker,
        topology,
        database_url=settings.database_url,
        settings=RelaySettings(
            batch_size=settings.outbox_batch_size,
            publish_timeout=settings.publish_timeout_seconds,
        ),
        limits=settings.db_limits(),
    )
    jobs = [retention_job(sessions, settings)]
    runtime = ServiceRuntime(name, settings, broker, topology, engine, sessions, relay, jobs)
    runtime.collectors.append(lambda: in_transaction(sessions, refresh_outbox_lag))
    return runtime


def retention_job(sessions: SessionFactory, settings: CommonSettings) -> PeriodicJob:
    rules = Retention(
        outbox_seconds=settings.outbox_retention_seconds,
        inbox_seconds=settings.inbox_retention_seconds,
        batch_size=settings.retention_batch_size,
    )
    return PeriodicJob(
        "outbox-inbox-retention",
        lambda: prune(sessions, rules),
        settings.retention_interval_seconds,
    )


async def declare_topology(broker: RabbitBroker, topology: Topology) -> None:
    """Declare every exchange and queue on one of the broker's channels."""
    events = await broker.declare_exchange(topology.events)
    await declare_all(events.channel, topology)


def build_app(runtime: ServiceRuntime, routers: Sequence[RabbitRouter]) -> FastStream:
    for router in routers:
        runtime.broker.include_router(router)
    log = logging.getLogger(runtime.name)
    ops = ops_server(runtime)

    # Everything a handler needs is up before FastStream starts the subscribers, so a
    # replica that cannot finish starting never takes (and loses) a message.
    async def on_startup() -> None:
        if ops is not None:
            await ops.start()
        await wait_for_database(runtime.engine)
        await runtime.broker.connect()
        await declare_topology(runtime.broker, runtime.topology)
        await runtime.relay.start()
        for job in runtime.jobs:
            job.start()
        for hook in runtime.on_start:
            await hook()

    async def after_startup() -> None:
        runtime.started = True
        log.info("%s ready (prefix %s)", runtime.name, runtime.topology.prefix)

    async def on_shutdown() -> None:
        runtime.started = False
        # Stop consuming and wait (up to the broker's graceful_timeout) for the handlers in
        # flight while what they use (Pulp client, claim pool, relay) is still open.
        await asyncio.gather(*(subscriber.stop() for subscriber in runtime.broker.subscribers))
        for hook in runtime.on_stop:
            await hook()
        for job in runtime.jobs:
            await job.stop()
        await runtime.relay.stop()

    async def after_shutdown() -> None:
        await runtime.engine.dispose()
        if ops is not None:
            await ops.stop()
        log.info("%s stopped", runtime.name)

    return FastStream(
        runtime.broker,
        logger=log,
        on_startup=[on_startup],
        after_startup=[after_startup],
        on_shutdown=[on_shutdown],
        after_shutdown=[after_shutdown],
    )


HEALTH_TIMEOUT = 2.0


def ops_server(runtime: ServiceRuntime) -> OpsServer | None:
    """/metrics and /healthz on the ops port, when one is set."""
    if not runtime.settings.ops_port:
        return None

    async def refresh() -> None:
        for collect in runtime.collectors:
            await collect()

    return OpsServer(
        runtime.settings.ops_host, runtime.settings.ops_port, lambda: health(runtime), refresh
    )


async def health(runtime: ServiceRuntime) -> tuple[bool, dict[str, str]]:
    """Ready once started (subscribers consuming) with RabbitMQ and PostgreSQL reachable."""
    try:
        reachable = await runtime.broker.ping(timeout=HEALTH_TIMEOUT)
    except Exception:
        reachable = False
    rabbitmq = "ok" if reachable else "unreachable"
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT), runtime.sessions() as session:
            await session.execute(text("SELECT 1"))
        postgresql = "ok"
    except Exception as exc:
        postgresql = f"error: {type(exc).__name__}"
    checks = {
        "subscribers": "started" if runtime.started else "not started",
        "rabbitmq": rabbitmq,
        "postgresql": postgresql,
    }
    ready = runtime.started and rabbitmq == "ok" and postgresql == "ok"
    return ready, checks
