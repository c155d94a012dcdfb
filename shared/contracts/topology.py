"""Exchange and queue names, defined once and declared by every service at start."""

from dataclasses import dataclass
from typing import Any

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

from shared.contracts.messages import Event, RpcSpec

# A message that keeps failing goes to the dead-letter queue after this many deliveries.
MAX_DELIVERIES = 10


@dataclass(frozen=True)
class Topology:
    prefix: str

    @property
    def events(self) -> RabbitExchange:
        return RabbitExchange(f"{self.prefix}.events", type=ExchangeType.TOPIC, durable=True)

    @property
    def dead_letters(self) -> RabbitExchange:
        return RabbitExchange(f"{self.prefix}.dead", type=ExchangeType.FANOUT, durable=True)

    @property
    def dead_letter_queue(self) -> RabbitQueue:
        return RabbitQueue(f"{self.prefix}.dead-letters", durable=True)

    def rpc_queue(self, spec: RpcSpec[Any, Any]) -> RabbitQueue:
        return RabbitQueue(f"{self.prefix}.rpc.{spec.name}", durable=True)

    def event_queue(self, consumer: str, event: type[Event]) -> RabbitQueue:
        """The queue of one consumer for one event; replicas of the consumer share it."""
        return RabbitQueue(
            f"{self.prefix}.{consumer}.{event.routing_key}",
            durable=True,
            routing_key=event.routing_key,
            queue_type=QueueType.QUORUM,
            arguments={
                "x-delivery-limit": MAX_DELIVERIES,
                "x-dead-letter-exchange": self.dead_letters.name,
            },
        )
