"""Processes MQTT deliveries one at a time, in arrival order, on the asyncio loop.

A payload that is not a push event is logged with its topic and acknowledged (dropped).
A valid event whose processing fails is retried with jittered backoff: for as long as it
takes when the failure is an outage (Redis or RabbitMQ unreachable, a publish not
confirmed), so an outage delays events but never loses them; `max_failures` times for any
other error, after which the message goes to the dead-letter queue with that error and the
consumer moves on to the next message.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gitea_bridge.mqtt import MqttDelivery
from gitea_bridge.pushes import PublishNotConfirmed
from shared.contracts.gitea import GiteaPushEvent
from shared.periodic import PeriodicJob
from shared.retry import retrying

log = logging.getLogger(__name__)

Handler = Callable[[GiteaPushEvent], Awaitable[None]]
Acknowledger = Callable[[MqttDelivery], None]
DeadLetterSink = Callable[[MqttDelivery, BaseException, int], Awaitable[None]]

TRANSIENT = (
    OSError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
    AMQPError,
    ChannelInvalidStateError,
    PublishNotConfirmed,
)


class Poisoned(Exception):
    """A message failed `max_failures` times with errors that are not outages."""


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT)


def parse_push(delivery: MqttDelivery) -> GiteaPushEvent | None:
    try:
        return GiteaPushEvent.model_validate_json(delivery.payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        log.warning(
            "mqtt: dropped a malformed message on topic %s (%d bytes): %s",
            delivery.topic,
            len(delivery.payload),
            problems,
        )
        return None


class Consumer:
    def __init__(
        self,
        handle: Handler,
        ack: Acknowledger,
        dead_letter: DeadLetterSink,
        *,
        max_failures: int = 5,
        retry_max_seconds: float = 30.0,
    ) -> None:
        self.deliveries: asyncio.Queue[MqttDelivery] = asyncio.Queue()
        self._handle = handle
        self._ack = ack
        self._dead_letter = dead_letter
        self._max_failures = max_failures
        self._retry_max = retry_max_seconds
        self._job = PeriodicJob("gitea-bridge-consumer", self._drain, 1.0)

    def deliver(self, delivery: MqttDelivery) -> None:
        """Called on the loop (the MQTT thread hands over with call_soon_threadsafe)."""
        self.deliveries.put_nowait(delivery)
        self._job.wake.set()

    def start(self) -> None:
        self._job.start()

    async def stop(self, drain_seconds: float) -> None:
        """Finish what has arrived (up to `drain_seconds`), then stop; the rest stays unacked."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.deliveries.join(), drain_seconds)
        await self._job.stop(wait_seconds=0)
        if not self.deliveries.empty():
            log.warning("mqtt: %d received messages left unprocessed", self.deliveries.qsize())

    async def _drain(self) -> None:
        while not self.deliveries.empty():
            delivery = self.deliveries.get_nowait()
            try:
                await self._process(delivery)
            finally:
                self.deliveries.task_done()

    async def _process(self, delivery: MqttDelivery) -> None:
        event = parse_push(delivery)
        if event is not None:
            try:
                await self._until_done(event, delivery.topic)
            except Poisoned as exc:
                error = exc.__cause__ or exc
                await retrying(
                    lambda: self._dead_letter(delivery, error, self._max_failures),
                    what=f"mqtt: dead-lettering a message of {delivery.topic}",
                    retry_on=lambda _: True,
                    max_wait=self._retry_max,
                )
        self._ack(delivery)

    async def _until_done(self, event: GiteaPushEvent, topic: str) -> None:
        failures = 0

        async def attempt() -> None:
            nonlocal failures
            try:
                await self._handle(event)
            except Exception as exc:
                if is_transient(exc):
                    raise
                failures += 1
                if failures >= self._max_failures:
                    raise Poisoned(str(exc)) from exc
                raise

        await retrying(
            attempt,
            what=f"mqtt: {event.ref} of {event.repository.full_name} (topic {topic})",
            retry_on=lambda error: not isinstance(error, Poisoned),
            max_wait=self._retry_max,
        )
