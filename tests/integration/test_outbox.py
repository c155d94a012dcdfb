"""Events leave through the outbox only when their transaction commits, and only once."""

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker
from sqlalchemy import func, select

from shared.contracts.messages import Event
from shared.contracts.topology import Topology
from shared.db.models import OutboxMessage
from shared.db.session import (
    SessionFactory,
    create_engine,
    create_session_factory,
    unit_of_work,
)
from shared.messaging.inbox import first_delivery
from shared.messaging.outbox import OutboxRelay, RelaySettings, add_event
from shared.messaging.runtime import declare_topology
from tests.support.fixtures import first_build_id, scratch_database
from tests.support.servers import Servers
from tests.support.waiting import eventually


class SomethingHappened(Event):
    routing_key = "test.something_happened"
    value: int


@pytest.fixture
async def broker(servers: Servers) -> AsyncIterator[RabbitBroker]:
    broker = RabbitBroker(servers.amqp_url)
    await broker.start()
    yield broker
    await broker.stop()


@pytest.fixture
async def listener(
    servers: Servers, amqp_prefix: str, broker: RabbitBroker
) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """An exclusive queue bound to the events exchange, to see what was published."""
    topology = Topology(amqp_prefix)
    await declare_topology(broker, topology)
    connection = await aio_pika.connect(servers.amqp_url)
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(topology.events.name, routing_key=SomethingHappened.routing_key)
    yield queue
    await connection.close()


def relay(broker: RabbitBroker, prefix: str, url: str) -> OutboxRelay:
    return OutboxRelay(broker, Topology(prefix), database_url=url)


async def drain(
    queue: aio_pika.abc.AbstractQueue, *, expect: int = 0, settle: float = 1.0
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Everything that arrives until `expect` messages came and `settle` s passed (max 10 s)."""
    messages: list[aio_pika.abc.AbstractIncomingMessage] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < 10:
        message = await queue.get(fail=False)
        if message is None:
            if len(messages) >= expect and loop.time() - started >= settle:
                break
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        messages.append(message)
    return messages


@pytest.mark.usefixtures("clean_db")
async def test_rolled_back_event_is_never_published(
    sessions: SessionFactory,
    broker: RabbitBroker,
    listener: aio_pika.abc.AbstractQueue,
    amqp_prefix: str,
    database_url: str,
) -> None:
    with pytest.raises(RuntimeError):
        async with unit_of_work(sessions) as session:
            await add_event(session, SomethingHappened(value=1))
            raise RuntimeError("the state change failed")
    idle = relay(broker, amqp_prefix, database_url)
    assert await idle.publish_pending() == 0
    await idle.stop()
    assert await drain(listener) == []


@pytest.mark.usefixtures("clean_db")
async def test_committed_event_is_published_once_across_relay_restarts(
    sessions: SessionFactory,
    broker: RabbitBroker,
    listener: aio_pika.abc.AbstractQueue,
    amqp_prefix: str,
    database_url: str,
) -> None:
    async with unit_of_work(sessions) as session:
        message_id = await add_event(session, SomethingHappened(value=2))

    first = relay(broker, amqp_prefix, database_url)
    await first.start()  # the running relay is woken by NOTIFY / its poll
    received = await drain(listener, expect=1)
    await first.stop()
    second = relay(broker, amqp_prefix, database_url)
    await second.start()
    received += await drain(listener, settle=1.5)  # a full poll period of the new relay
    await second.stop()

    assert len(received) == 1
    assert received[0].message_id == str(message_id)
    assert received[0].delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert json.loads(received[0].body)["value"] == 2
    async with sessions() as session:
        pending = await session.scalar(
            select(func.count()).where(OutboxMessage.published_at.is_(None))
        )
    assert pending == 0


@pytest.mark.usefixtures("clean_db")
async def test_event_written_in_a_later_transaction_wakes_a_running_relay(
    sessions: SessionFactory,
    broker: RabbitBroker,
    listener: aio_pika.abc.AbstractQueue,
    amqp_prefix: str,
    database_url: str,
) -> None:
    running = relay(broker, amqp_prefix, database_url)
    await running.start()
    try:
        for value in range(3):
            async with unit_of_work(sessions) as session:
                await add_event(session, SomethingHappened(value=value))
        received = await drain(listener, expect=3)
    finally:
        await running.stop()
    assert [m.body.count(b'"value":') for m in received] == [1, 1, 1]
    assert len({m.message_id for m in received}) == 3


@pytest.fixture
def own_database(servers: Servers, run_id: str) -> Iterator[str]:
    """A database no other relay uses: the listener lock is per database, and the run's
    in-process services keep relays on the shared one."""
    name = f"albs_test_{run_id}_relays"
    yield from scratch_database(servers, name, first_build_id(run_id, offset=3100))


async def test_one_relay_per_database_listens_and_another_takes_over_when_it_stops(
    broker: RabbitBroker,
    listener: aio_pika.abc.AbstractQueue,
    amqp_prefix: str,
    own_database: str,
) -> None:
    topology = Topology(amqp_prefix)
    fast = RelaySettings(poll_seconds=0.1)
    first, second = (
        OutboxRelay(broker, topology, database_url=own_database, settings=fast) for _ in range(2)
    )
    engine = create_engine(own_database, pool_size=1)
    sessions = create_session_factory(engine)
    await first.start()
    await second.start()
    try:
        assert (first.listening, second.listening) == (True, False)
        async with unit_of_work(sessions) as session:
            await add_event(session, SomethingHappened(value=1))
        assert len(await drain(listener, expect=1)) == 1
        await first.stop()

        async def taken_over() -> bool:
            return second.listening

        await eventually(taken_over, timeout=10)
        async with unit_of_work(sessions) as session:
            await add_event(session, SomethingHappened(value=2))
        received = await drain(listener, expect=1)
    finally:
        await first.stop()
        await second.stop()
        await engine.dispose()
    assert [json.loads(m.body)["value"] for m in received] == [2]


@pytest.mark.usefixtures("clean_db")
async def test_a_redelivered_event_takes_effect_once(sessions: SessionFactory) -> None:
    """A relay that crashed after publishing but before marking sends the same id again."""
    message_id = "6f1c2a52-3a8e-4d51-9a53-2f3c8f3f6d10"
    async with unit_of_work(sessions) as session:
        assert await first_delivery(session, "scheduler", message_id)
    async with unit_of_work(sessions) as session:
        assert not await first_delivery(session, "scheduler", message_id)
        assert await first_delivery(session, "artifacts", message_id)  # another consumer


@pytest.mark.usefixtures("clean_db")
async def test_inbox_row_is_undone_with_a_failed_handler(sessions: SessionFactory) -> None:
    message_id = "0b7e6c1e-8f0a-4a4b-8c5c-1d2e3f405162"
    with pytest.raises(RuntimeError):
        async with unit_of_work(sessions) as session:
            assert await first_delivery(session, "scheduler", message_id)
            raise RuntimeError("handler failed; the message will be redelivered")
    async with unit_of_work(sessions) as session:
        assert await first_delivery(session, "scheduler", message_id)
