"""Publishing and watching events on the test run's exchange, as another service would."""

import uuid
from collections.abc import AsyncIterator

import pytest
from faststream.rabbit import RabbitBroker

from shared.contracts.messages import Event
from shared.contracts.topology import Topology
from tests.support.servers import Servers


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
