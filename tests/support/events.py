"""Publishing and watching events on the test run's exchange, as another service would."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker

from shared.contracts.messages import Event
from shared.contracts.topology import Topology
from tests.support.servers import Servers
from tests.support.waiting import eventually


class EventBus:
    def __init__(self, broker: RabbitBroker, topology: Topology) -> None:
        self._broker = broker
        self._topology = topology

    async def publish(self, event: Event, message_id: str | None = None) -> str:
        message_id = message_id or str(uuid.uuid4())
        await self._broker.publish(
            event.model_dump(mode="json"),
            exchange=self._topology.events,
            routing_key=event.routing_key,
            message_id=message_id,
            persist=True,
        )
        return message_id


@pytest.fixture
async def event_bus(servers: Servers, amqp_prefix: str) -> AsyncIterator[EventBus]:
    broker = RabbitBroker(servers.amqp_url)
    await broker.start()
    yield EventBus(broker, Topology(amqp_prefix))
    await broker.stop()


class EventTap:
    """Every event published on the run's exchange while the tap is open, as consumers see
    it (after the relay), so tests assert on what left, never on outbox rows."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def of(self, routing_key: str) -> list[dict[str, Any]]:
        return [payload for key, payload in self.seen if key == routing_key]

    async def settled(
        self, routing_key: str, count: int, *, settle: float = 0.5, timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        """The events of this kind once `count` arrived and `settle` s brought no more."""

        async def arrived() -> bool:
            return len(self.of(routing_key)) >= count

        await eventually(arrived, timeout=timeout)
        await asyncio.sleep(settle)
        return self.of(routing_key)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            self.seen.append((message.routing_key or "", json.loads(message.body)))


@asynccontextmanager
async def tap_events(amqp_url: str, prefix: str) -> AsyncIterator[EventTap]:
    tap = EventTap()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            Topology(prefix).events.name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="#")
        await queue.consume(tap._on_message)
        yield tap


@pytest.fixture
async def event_tap(servers: Servers, amqp_prefix: str) -> AsyncIterator[EventTap]:
    async with tap_events(servers.amqp_url, amqp_prefix) as tap:
        yield tap
