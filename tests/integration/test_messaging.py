"""Messages you can trust: routing that does not depend on start order, the claiming relay,
retention, poison messages and their replay (docs/decisions/0010-messages-you-can-trust.md)."""

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker
from sqlalchemy import func, select, text, update

from shared.contracts.builds import BuildReposReady
from shared.contracts.topology import Topology
from shared.db.base import utcnow
from shared.db.models import Build, InboxMessage, OutboxMessage, User
from shared.db.session import (
    SessionFactory,
    create_engine,
    create_session_factory,
    unit_of_work,
)
from shared.messaging.dead_letters import DeadLetterInfo, list_dead_letters, replay_dead_letter
from shared.messaging.declare import declare_all
from shared.messaging.inbox import first_delivery
from shared.messaging.outbox import OutboxRelay, RelaySettings, add_event
from shared.messaging.poison import dead_letter_headers
from shared.messaging.retention import Retention, prune
from tests.support.fixtures import first_build_id, scratch_database
from tests.support.servers import Servers
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("clean_db")


@pytest.fixture(scope="module")
def relay_database(servers: Servers, run_id: str) -> Iterator[str]:
    """A database of its own: the relays of the run's in-process services (on the run's
    database) must not publish the rows these tests write for their own relays."""
    yield from scratch_database(servers, f"albs_test_{run_id}_relay", first_build_id(run_id, 1800))


@pytest.fixture
async def relay_sessions(relay_database: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(relay_database, pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE outbox, inbox"))
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def broker(servers: Servers) -> AsyncIterator[RabbitBroker]:
    broker = RabbitBroker(servers.amqp_url)
    await broker.start()
    yield broker
    await broker.stop()


@pytest.fixture
async def fresh_prefix(servers: Servers, amqp_prefix: str) -> AsyncIterator[str]:
    """A prefix nobody declared anything under yet; its queues are deleted afterwards."""
    prefix = f"{amqp_prefix}-m{uuid.uuid4().hex[:6]}"
    yield prefix
    topology = Topology(prefix)
    connection = await aio_pika.connect(servers.amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in [*topology.event_queues(), *topology.rpc_queues(), topology.dead_letter_queue]:
            await channel.queue_delete(queue.name)
        for exchange in (topology.events, topology.dead_letters):
            await channel.exchange_delete(exchange.name)


async def add_events(sessions: SessionFactory, count: int, build_id: int = 1) -> None:
    async with unit_of_work(sessions) as session:
        for _ in range(count):
            await add_event(session, BuildReposReady(build_id=build_id))


async def unpublished(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(
            await session.scalar(select(func.count()).where(OutboxMessage.published_at.is_(None)))
            or 0
        )


async def queued_ids(servers: Servers, queue_name: str) -> list[str]:
    connection = await aio_pika.connect(servers.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name)
        ids = []
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            ids.append(message.message_id or "")
        return ids


async def test_an_event_for_a_queue_not_declared_yet_is_retried_not_lost(
    relay_sessions: SessionFactory,
    broker: RabbitBroker,
    servers: Servers,
    fresh_prefix: str,
    relay_database: str,
) -> None:
    topology = Topology(fresh_prefix)
    await broker.declare_exchange(topology.events)  # the exchange only, as before this fix
    await add_events(relay_sessions, 1)
    relay = OutboxRelay(broker, topology, database_url=relay_database)
    assert await relay.publish_pending() == 0  # returned unrouted: a failure, not a success
    assert await unpublished(relay_sessions) == 1

    connection = await aio_pika.connect(servers.amqp_url)
    async with connection:
        await declare_all(await connection.channel(), topology)
    async with unit_of_work(relay_sessions) as session:  # skip the retry delay
        await session.execute(update(OutboxMessage).values(claimed_until=None))
    assert await relay.publish_pending() == 1
    await relay.stop()
    assert (
        len(await queued_ids(servers, topology.event_queue("scheduler", BuildReposReady).name)) == 1
    )


async def test_relays_of_three_replicas_publish_every_row_once(
    relay_sessions: SessionFactory, servers: Servers, fresh_prefix: str, relay_database: str
) -> None:
    topology = Topology(fresh_prefix)
    connection = await aio_pika.connect(servers.amqp_url)
    async with connection:
        await declare_all(await connection.channel(), topology)
    await add_events(relay_sessions, 1500)
    brokers = [RabbitBroker(servers.amqp_url) for _ in range(3)]
    relays = [
        OutboxRelay(
            b, topology, database_url=relay_database, settings=RelaySettings(batch_size=200)
        )
        for b in brokers
    ]
    for b in brokers:
        await b.start()
    try:
        for relay in relays:
            await relay.start()

        async def all_published() -> bool:
            return await unpublished(relay_sessions) == 0

        await eventually(all_published, timeout=60)
    finally:
        for relay in relays:
            await relay.stop()
        for b in brokers:
            await b.stop()
    ids = await queued_ids(servers, topology.event_queue("scheduler", BuildReposReady).name)
    assert len(ids) == 1500
    assert len(set(ids)) == 1500


async def test_an_event_nobody_consumes_is_published_without_a_queue(
    relay_sessions: SessionFactory, broker: RabbitBroker, fresh_prefix: str, relay_database: str
) -> None:
    topology = Topology(fresh_prefix)
    await declare_all((await broker.declare_exchange(topology.events)).channel, topology)
    async with unit_of_work(relay_sessions) as session:
        await session.execute(
            text(
                "INSERT INTO outbox (message_id, routing_key, payload) "
                "VALUES (gen_random_uuid(), 'build_task.assigned', '{}'::jsonb)"
            )
        )  # the way the claim statement writes it: plain SQL, new columns left out
    relay = OutboxRelay(broker, topology, database_url=relay_database)
    assert await relay.publish_pending() == 1
    await relay.stop()


async def test_retention_shrinks_the_tables_and_keeps_dedupe_inside_the_window(
    relay_sessions: SessionFactory,
) -> None:
    await add_events(relay_sessions, 30)
    old, recent = uuid.uuid4(), uuid.uuid4()
    async with unit_of_work(relay_sessions) as session:
        ids = list(await session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)))
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids[:25]))
            .values(published_at=utcnow() - timedelta(days=2))
        )
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids[25:28]))
            .values(published_at=utcnow())
        )
        for message_id, age in ((old, timedelta(days=8)), (recent, timedelta(days=6))):
            session.add(
                InboxMessage(
                    consumer="scheduler", message_id=message_id, processed_at=utcnow() - age
                )
            )

    report = await prune(
        relay_sessions, Retention(outbox_seconds=86_400, inbox_seconds=7 * 86_400, batch_size=10)
    )
    assert (report.outbox, report.inbox) == (25, 1)
    async with relay_sessions() as session:
        left = await session.scalar(select(func.count()).select_from(OutboxMessage))
    assert left == 5  # 3 published recently, 2 not published at all: never deleted
    async with unit_of_work(relay_sessions) as session:
        assert not await first_delivery(session, "scheduler", str(recent))  # still a duplicate
        assert await first_delivery(session, "scheduler", str(old))  # forgotten after 7 days


async def test_a_poison_event_is_dead_lettered_with_its_error_and_can_be_replayed(
    sessions: SessionFactory,
    servers: Servers,
    amqp_prefix: str,
    scheduler: object,
    broker: RabbitBroker,
) -> None:
    topology = Topology(amqp_prefix)
    await queued_ids(servers, topology.dead_letter_queue.name)  # start from an empty queue
    queue = topology.event_queue("scheduler", BuildReposReady)
    bad_id = str(uuid.uuid4())
    # A message that can never be handled: the build id is not a number.
    await broker.publish(
        {"build_id": "forty-two"},
        exchange=topology.events,
        routing_key=BuildReposReady.routing_key,
        message_id=bad_id,
        persist=True,
    )

    async def dead() -> list[DeadLetterInfo]:
        return list(await list_dead_letters(servers.amqp_url, topology, limit=10))

    [info] = await eventually(dead, timeout=30)
    assert info.message_id == bad_id
    assert info.queue == queue.name
    assert "ValidationError" in info.error
    assert info.failures == 1  # it could never succeed: dead-lettered at the first failure
    # Listing leaves it in place.
    assert [i.message_id for i in await list_dead_letters(servers.amqp_url, topology, 10)] == [
        bad_id
    ]
    await queued_ids(servers, topology.dead_letter_queue.name)

    # A letter that failed while its build did not exist yet is replayed and takes effect.
    build_id = await _build(sessions)
    good_id = str(uuid.uuid4())
    headers = dead_letter_headers(
        {},
        queue=queue.name,
        routing_key=BuildReposReady.routing_key,
        error=RuntimeError("build not found"),
        failures=5,
    )
    await broker.publish(
        BuildReposReady(build_id=build_id).model_dump(mode="json"),
        exchange=topology.dead_letters,
        message_id=good_id,
        headers=headers,
        persist=True,
    )
    await eventually(lambda: _listed(servers, topology, good_id))
    replayed = await replay_dead_letter(servers.amqp_url, topology, good_id, _no_mqtt)
    assert replayed.queue == queue.name

    async def ready() -> bool:
        async with sessions() as session:
            return bool(await session.scalar(select(Build.ready).where(Build.id == build_id)))

    await eventually(ready)
    assert await list_dead_letters(servers.amqp_url, topology, 10) == []


async def _listed(servers: Servers, topology: Topology, message_id: str) -> bool:
    return any(
        i.message_id == message_id for i in await list_dead_letters(servers.amqp_url, topology, 50)
    )


async def _no_mqtt(topic: str, payload: bytes) -> None:
    raise AssertionError("not an MQTT letter")


async def _build(sessions: SessionFactory) -> int:
    async with unit_of_work(sessions) as session:
        user = User(username=f"u{uuid.uuid4().hex[:6]}", email="u@example.org")
        session.add(user)
        await session.flush()
        build = Build(user_id=user.id, mock_options={}, linked_builds=[], tasks=[])
        session.add(build)
        await session.flush()
        return build.id
