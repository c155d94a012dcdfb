"""How a service subscribes to an event: its own durable queue, redelivery on failure."""

from collections.abc import Callable
from typing import Any

from faststream import AckPolicy
from faststream.rabbit import RabbitRouter

from shared.contracts.messages import Event
from shared.contracts.topology import Topology


def event_subscriber(
    router: RabbitRouter, topology: Topology, consumer: str, event: type[Event]
) -> Callable[[Callable[..., Any]], Any]:
    """Subscribe `consumer` to `event`. A handler that raises gets the message again (the
    queue's delivery limit then dead-letters a message that keeps failing)."""
    return router.subscriber(
        topology.event_queue(consumer, event),
        topology.events,
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
