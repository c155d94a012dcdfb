"""The dead-letter queue seen by operators: count, list and replay what failed.

Listing takes messages without acknowledging them and then closes the channel, so RabbitMQ
puts every one back where it was. Replaying sends one message back to the queue it failed in
(through the default exchange, so only that consumer sees it again) or, for a message that
came from MQTT, back to its MQTT topic, and only then removes it from the dead-letter queue.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from shared.contracts.topology import Topology
from shared.messaging.poison import (
    DEAD_AT_HEADER,
    ERROR_HEADER,
    FAILURES_HEADER,
    MQTT_TOPIC_HEADER,
    QUEUE_HEADER,
    ROUTING_KEY_HEADER,
)

# A replay looks at most this many dead letters for the one asked for.
MAX_SCAN = 10_000
TIMEOUT = 10.0

MqttPublisher = Callable[[str, bytes], Awaitable[None]]


@dataclass(frozen=True)
class DeadLetterInfo:
    message_id: str
    queue: str | None
    mqtt_topic: str | None
    routing_key: str | None
    error: str
    failures: int | None
    dead_at: str | None
    size: int


class NoSuchDeadLetter(LookupError):
    pass


def describe(message: AbstractIncomingMessage) -> DeadLetterInfo:
    headers: dict[str, Any] = dict(message.headers or {})
    death = _first_death(headers)
    queue = headers.get(QUEUE_HEADER) or death.get("queue")
    keys = death.get("routing-keys") or []
    failures = headers.get(FAILURES_HEADER)
    return DeadLetterInfo(
        message_id=message.message_id or "",
        queue=_text(queue),
        mqtt_topic=_text(headers.get(MQTT_TOPIC_HEADER)),
        routing_key=_text(headers.get(ROUTING_KEY_HEADER) or (keys[0] if keys else None)),
        error=_text(headers.get(ERROR_HEADER))
        or f"{_text(death.get('reason')) or 'unknown'} (no error recorded)",
        failures=failures if isinstance(failures, int) else None,
        dead_at=_text(headers.get(DEAD_AT_HEADER)),
        size=len(message.body),
    )


async def dead_letter_count(connection: AbstractConnection, topology: Topology) -> int:
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(
            topology.dead_letter_queue.name, passive=True, timeout=TIMEOUT
        )
        return int(queue.declaration_result.message_count or 0)
    finally:
        await channel.close()


async def list_dead_letters(amqp_url: str, topology: Topology, limit: int) -> list[DeadLetterInfo]:
    connection = await aio_pika.connect(amqp_url, timeout=TIMEOUT)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.dead_letter_queue.name)
        found: list[DeadLetterInfo] = []
        while len(found) < limit:
            message = await queue.get(fail=False, timeout=TIMEOUT)
            if message is None:
                break
            found.append(describe(message))
        await channel.close()  # every message taken goes back, in its place
        return found


async def replay_dead_letter(
    amqp_url: str, topology: Topology, message_id: str, mqtt: MqttPublisher
) -> DeadLetterInfo:
    connection = await aio_pika.connect(amqp_url, timeout=TIMEOUT)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await channel.get_queue(topology.dead_letter_queue.name)
        for _ in range(MAX_SCAN):
            message = await queue.get(fail=False, timeout=TIMEOUT)
            if message is None:
                break
            if message.message_id != message_id:
                continue
            info = describe(message)
            await _send_back(channel, message, info, mqtt)
            await message.ack()
            await channel.close()
            return info
        await channel.close()
    raise NoSuchDeadLetter(f"no dead letter with id {message_id}")


async def _send_back(
    channel: AbstractChannel,
    message: AbstractIncomingMessage,
    info: DeadLetterInfo,
    mqtt: MqttPublisher,
) -> None:
    if info.mqtt_topic:
        await mqtt(info.mqtt_topic, message.body)
        return
    if not info.queue:
        raise NoSuchDeadLetter(f"dead letter {info.message_id} does not say where it came from")
    headers = {
        k: v for k, v in (message.headers or {}).items() if not k.startswith(("x-albs-", "x-death"))
    }
    replayed = aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        message_id=message.message_id or str(uuid.uuid4()),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
    await channel.default_exchange.publish(
        replayed, routing_key=info.queue, mandatory=True, timeout=TIMEOUT
    )


def _first_death(headers: dict[str, Any]) -> dict[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return {}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
