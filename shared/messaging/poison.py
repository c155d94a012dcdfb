"""Poison events: a message that keeps failing goes to the dead-letter queue with its error.

The consumer counts the failed deliveries (RabbitMQ's `x-delivery-count` on quorum queues);
at `max_failures`, or at once when the handler raises `DeadLetter`, it publishes the message
to the dead-letter exchange with headers saying which queue it failed in and why, and acks
it. The queues' own `x-delivery-limit` stays as a backstop (it dead-letters without the
error). `albs dead-letters replay` sends a message back to the queue it failed in.
"""

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiormq import spec
from faststream import BaseMiddleware
from faststream.message import StreamMessage
from pydantic import ValidationError

from shared import metrics
from shared.contracts.topology import Topology
from shared.messaging.observe import dead_lettered

log = logging.getLogger(__name__)

ERROR_HEADER = "x-albs-error"
QUEUE_HEADER = "x-albs-queue"
ROUTING_KEY_HEADER = "x-albs-routing-key"
FAILURES_HEADER = "x-albs-failures"
DEAD_AT_HEADER = "x-albs-dead-at"
# Set instead of QUEUE_HEADER on a message that came from MQTT (the gitea bridge).
MQTT_TOPIC_HEADER = "x-albs-mqtt-topic"
MAX_ERROR_LENGTH = 2000
DEAD_LETTER_TIMEOUT = 10.0


class DeadLetter(Exception):
    """Raised by a handler for a message that can never succeed: dead-letter it now."""


def failed_deliveries(headers: dict[str, Any] | None) -> int:
    """How many earlier deliveries of this message failed (0 on its first delivery)."""
    count = (headers or {}).get("x-delivery-count", 0)
    return int(count) if isinstance(count, int) else 0


def should_dead_letter(error: BaseException, earlier_failures: int, max_failures: int) -> bool:
    # A body that fails validation fails it on every delivery.
    never_succeeds = isinstance(error, DeadLetter | ValidationError)
    return never_succeeds or earlier_failures + 1 >= max_failures


def dead_letter_headers(
    headers: dict[str, Any] | None,
    *,
    queue: str,
    routing_key: str,
    error: BaseException,
    failures: int,
) -> dict[str, Any]:
    kept = {k: v for k, v in (headers or {}).items() if k != "x-delivery-count"}
    return {
        **kept,
        ERROR_HEADER: f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH],
        QUEUE_HEADER: queue,
        ROUTING_KEY_HEADER: routing_key,
        FAILURES_HEADER: failures,
        DEAD_AT_HEADER: datetime.now(UTC).isoformat(),
    }


def mqtt_dead_letter_headers(topic: str, error: BaseException, failures: int) -> dict[str, Any]:
    return {
        ERROR_HEADER: f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH],
        MQTT_TOPIC_HEADER: topic,
        FAILURES_HEADER: failures,
        DEAD_AT_HEADER: datetime.now(UTC).isoformat(),
    }


def poison_middleware(topology: Topology, max_failures: int) -> type[BaseMiddleware]:
    event_queues = {queue.name for queue in topology.event_queues()}

    class PoisonMiddleware(BaseMiddleware):
        async def consume_scope(
            self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
        ) -> Any:
            queue = getattr(getattr(self.context.get_local("handler_"), "queue", None), "name", "")
            if queue not in event_queues:
                return await call_next(msg)
            try:
                return await call_next(msg)
            except Exception as exc:
                earlier = failed_deliveries(msg.headers)
                if not should_dead_letter(exc, earlier, max_failures):
                    raise
                await _dead_letter(msg, topology, queue, exc, earlier + 1)
                dead_lettered.set(True)
                metrics.DEAD_LETTERED.labels(queue.removeprefix(f"{topology.prefix}.")).inc()
                return None

    return PoisonMiddleware


async def _dead_letter(
    msg: StreamMessage[Any], topology: Topology, queue: str, error: BaseException, failures: int
) -> None:
    raw = msg.raw_message
    headers = dead_letter_headers(
        dict(raw.headers or {}),
        queue=queue,
        routing_key=raw.routing_key or "",
        error=error,
        failures=failures,
    )
    properties = spec.Basic.Properties(
        content_type=raw.content_type,
        delivery_mode=2,
        message_id=raw.message_id,
        headers=headers,
    )
    confirmation = await raw.channel.basic_publish(
        raw.body,
        exchange=topology.dead_letters.name,
        routing_key=queue,
        properties=properties,
        timeout=DEAD_LETTER_TIMEOUT,
    )
    if confirmation is not None and not isinstance(confirmation, spec.Basic.Ack):
        raise RuntimeError(f"the dead-letter exchange did not confirm {raw.message_id}") from error
    log.error(
        "dead-lettered %s from %s after %d failed deliveries: %s",
        raw.message_id,
        queue,
        failures,
        headers[ERROR_HEADER],
    )
