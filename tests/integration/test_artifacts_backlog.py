"""A backlog of 1,000 events drains without exhausting the service's connection pool.

Each handler holds at most one database session at a time. Messages of a queue are handled
concurrently (prefetch 10), so a handler that opened a second session while holding one
could stall the whole service on `QueuePool limit ... reached` (issue 10); with a pool of
one connection it would at once. The events are the
cheap kinds (a build or task that is gone), so Pulp is not involved and the test is fast.
"""

import logging
import uuid

import pytest
from faststream.rabbit import RabbitBroker
from sqlalchemy import func, select

from artifacts.handlers.builds import CONSUMER
from shared.contracts.build_node import BuildTaskFinished
from shared.contracts.builds import BuildCreated
from shared.contracts.messages import Event
from shared.contracts.topology import Topology
from shared.db.models import InboxMessage
from shared.db.session import SessionFactory
from tests.support.artifacts import running_artifacts
from tests.support.events import EventBus
from tests.support.pulp_node import PulpServer
from tests.support.servers import Servers
from tests.support.waiting import eventually

EACH = 500  # of both kinds: 1,000 messages
GONE = 2_000_000_000  # ids no build or task of the test run has


def gone_build(n: int) -> BuildCreated:
    return BuildCreated.model_validate(
        {
            "build_id": GONE + n,
            "platforms": [{"platform_id": 0, "name": "gone", "arch_list": ["x86_64"]}],
            "tasks": [{"task_id": GONE + n, "platform": "gone", "arch": "x86_64"}],
        }
    )


def gone_report(n: int) -> BuildTaskFinished:
    return BuildTaskFinished.model_validate(
        {
            "task_id": GONE + n,
            "build_id": GONE + n,
            "attempt": 1,
            "status": "failed",
            "platform": "gone",
            "arch": "x86_64",
            "artifacts": [],
        }
    )


async def queue_backlog(amqp_url: str, topology: Topology, events: list[Event]) -> list[str]:
    """Declare the service's queues (as it will) and fill them before it starts."""
    broker = RabbitBroker(amqp_url)
    await broker.start()
    try:
        exchange = await broker.declare_exchange(topology.events)
        for kind in (BuildCreated, BuildTaskFinished):
            queue = await broker.declare_queue(topology.event_queue(CONSUMER, kind))
            await queue.bind(exchange, routing_key=kind.routing_key)
        bus = EventBus(broker, topology)
        return [await bus.publish(event) for event in events]
    finally:
        await broker.stop()


async def inbox_count(sessions: SessionFactory, message_ids: list[str]) -> int:
    async with sessions() as session:
        counted = await session.scalar(
            select(func.count()).where(
                InboxMessage.consumer == CONSUMER,
                InboxMessage.message_id.in_([uuid.UUID(m) for m in message_ids]),
            )
        )
    return int(counted or 0)


async def test_a_backlog_of_a_thousand_events_drains_without_pool_errors(
    service_env: dict[str, str],
    servers: Servers,
    amqp_prefix: str,
    pulp_server: PulpServer,
    sessions: SessionFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topology = Topology(amqp_prefix)
    events: list[Event] = [gone_build(n) for n in range(EACH)]
    events += [gone_report(n) for n in range(EACH)]
    caplog.set_level(logging.WARNING)
    message_ids = await queue_backlog(servers.amqp_url, topology, events)

    # A pool of one connection (+1 overflow): a handler that opened a second session while
    # holding one would deadlock here at once, instead of only under an unlucky backlog.
    async with running_artifacts(
        service_env, servers, amqp_prefix, pulp_url=pulp_server.url, purge=False, db_pool_size=1
    ):

        async def drained() -> bool:
            return await inbox_count(sessions, message_ids) == len(message_ids)

        await eventually(drained, timeout=120, every=0.5)

    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not problems, problems[:3]
    assert not [r for r in caplog.records if "QueuePool" in r.getMessage()]
