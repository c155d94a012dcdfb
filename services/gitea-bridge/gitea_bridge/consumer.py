"""Processes MQTT deliveries one at a time, in arrival order, on the asyncio loop.

A payload that is not a push event is logged with its topic and acknowledged (dropped).
A valid event whose processing fails is retried with backoff until it succeeds, and only
then acknowledged: a Redis or RabbitMQ outage delays events, it never loses them.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from gitea_bridge.mqtt import MqttDelivery
from shared.contracts.gitea import GiteaPushEvent

log = logging.getLogger(__name__)

Handler = Callable[[GiteaPushEvent], Awaitable[None]]
Acknowledger = Callable[[MqttDelivery], None]

MIN_RETRY_SECONDS = 0.2


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
        *,
        retry_max_seconds: float = 30.0,
    ) -> None:
        self.deliveries: asyncio.Queue[MqttDelivery] = asyncio.Queue()
        self._handle = handle
        self._ack = ack
        self._retry_max = retry_max_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gitea-bridge-consumer")

    async def stop(self, drain_seconds: float) -> None:
        """Finish what has arrived (up to `drain_seconds`), then stop; the rest stays unacked."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.deliveries.join(), drain_seconds)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if not self.deliveries.empty():
            log.warning("mqtt: %d received messages left unprocessed", self.deliveries.qsize())

    async def _run(self) -> None:
        while True:
            delivery = await self.deliveries.get()
            try:
                await self._process(delivery)
            finally:
                self.deliveries.task_done()

    async def _process(self, delivery: MqttDelivery) -> None:
        event = parse_push(delivery)
        if event is not None:
            await self._until_done(event, delivery.topic)
        self._ack(delivery)

    async def _until_done(self, event: GiteaPushEvent, topic: str) -> None:
        delay = MIN_RETRY_SECONDS
        while True:
            try:
                await self._handle(event)
                return
            except Exception as exc:
                log.warning(
                    "mqtt: processing %s of %s (topic %s) failed, retrying in %.1f s: %r",
                    event.ref,
                    event.repository.full_name,
                    topic,
                    delay,
                    exc,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)
