"""Declare the whole topology (exchanges, every queue, bindings, dead-letter policy).

Every process calls this at start, publishers included: an event published before its
consumer ever ran then waits in the consumer's durable queue instead of being returned.
Declarations are idempotent as long as the arguments match, which they do because every
process takes them from `shared.contracts.topology`.
"""

import aio_pika
from aio_pika.abc import AbstractChannel

from shared.contracts.topology import Topology


async def declare_all(channel: AbstractChannel, topology: Topology) -> None:
    events = await channel.declare_exchange(
        topology.events.name, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dead = await channel.declare_exchange(
        topology.dead_letters.name, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_queue = await channel.declare_queue(topology.dead_letter_queue.name, durable=True)
    await dead_queue.bind(dead)
    for queue in topology.event_queues():
        declared = await channel.declare_queue(queue.name, durable=True, arguments=queue.arguments)
        await declared.bind(events, routing_key=queue.routing_key)
    for queue in topology.rpc_queues():
        await channel.declare_queue(queue.name, durable=True, arguments=queue.arguments)
