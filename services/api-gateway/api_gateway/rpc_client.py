"""A concurrent RPC client (and event publisher) on aio-pika.

FastStream's `broker.request()` holds one lock per process for each round trip, so
every RPC of a gateway would wait for the one before it. Here one consumer on
RabbitMQ's direct reply-to pseudo-queue serves all calls; each call waits on its
own future, found again by correlation id. See docs/decisions/0001-rpc-client.md.
"""

import asyncio
import contextlib
import logging
import uuid
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aio_pika.exceptions import (
    AMQPError,
    ChannelInvalidStateError,
    DeliveryError,
    PublishError,
)
from pydantic import BaseModel, ValidationError

from shared.contracts.messages import Event, RpcReply, RpcSpec
from shared.contracts.topology import Topology
from shared.errors import Unavailable, error_for_status
from shared.messaging.declare import declare_all

log = logging.getLogger(__name__)

REPLY_QUEUE = "amq.rabbitmq.reply-to"
Res = TypeVar("Res", bound=BaseModel)


class RpcClient:
    def __init__(self, amqp_url: str, topology: Topology, *, timeout: float) -> None:
        self._url = amqp_url
        self._topology = topology
        self._timeout = timeout
        self._pending: dict[str, asyncio.Future[RpcReply]] = {}
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._events: AbstractExchange | None = None

    @property
    def connection(self) -> AbstractRobustConnection | None:
        return self._connection

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        await self._open_channel()
        assert self._channel is not None
        await declare_all(self._channel, self._topology)
        # aio-pika cannot restore a consumer of the direct reply-to pseudo-queue (it would
        # declare it), so after a reconnect the client opens a fresh channel itself.
        self._connection.reconnect_callbacks.add(self._on_reconnect)

    async def _open_channel(self) -> None:
        assert self._connection is not None
        # Publishing with reply-to must happen on the channel that consumes the replies.
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await channel.get_queue(REPLY_QUEUE, ensure=False)
        await queue.consume(self._on_reply, no_ack=True)
        self._events = await channel.get_exchange(self._topology.events.name, ensure=False)
        old, self._channel = self._channel, channel
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()

    async def _on_reconnect(self, *_: object) -> None:
        try:
            await self._open_channel()
            log.info("rpc: reconnected to RabbitMQ")
        except Exception:
            log.exception("rpc: could not reopen the channel after a reconnect")

    async def stop(self) -> None:
        for future in self._pending.values():
            future.cancel()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def call(self, spec: RpcSpec[Any, Res], request: BaseModel) -> Res | None:
        """Send one request and wait for its reply; error replies are raised as AlbsError."""
        reply = await self._round_trip(spec, request)
        if not reply.ok:
            error = reply.error
            raise (
                error_for_status(error.status, error.detail) if error else Unavailable("RPC failed")
            )
        if spec.result is None or reply.result is None:
            return None
        return spec.result.model_validate(reply.result)

    async def publish_event(self, event: Event) -> None:
        """Publish persistently and return once RabbitMQ confirmed it reached a queue."""
        if self._events is None:
            raise Unavailable("The gateway is not connected to RabbitMQ.")
        message = aio_pika.Message(
            body=event.model_dump_json().encode(),
            content_type="application/json",
            message_id=str(uuid.uuid4()),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            async with asyncio.timeout(self._timeout):  # also bounds waiting for a reconnect
                await self._events.publish(
                    message, routing_key=event.routing_key, mandatory=True, timeout=self._timeout
                )
        except (DeliveryError, PublishError) as exc:
            raise Unavailable(
                f"No service takes {event.routing_key} events (is it running?)."
            ) from exc
        except (AMQPError, ChannelInvalidStateError, ConnectionError, TimeoutError) as exc:
            raise Unavailable("RabbitMQ is unreachable; try again shortly.") from exc

    async def _round_trip(self, spec: RpcSpec[Any, Any], request: BaseModel) -> RpcReply:
        if self._channel is None:
            raise Unavailable("The gateway is not connected to RabbitMQ.")
        queue = self._topology.rpc_queue(spec).name
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[RpcReply] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            await self._publish(queue, correlation_id, request)
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            raise Unavailable(
                f"No {spec.name} handler answered within {self._timeout:g} s; "
                "the scheduler may be down or overloaded. Try again."
            ) from None
        finally:
            self._pending.pop(correlation_id, None)

    async def _publish(self, queue: str, correlation_id: str, request: BaseModel) -> None:
        assert self._channel is not None
        message = aio_pika.Message(
            body=request.model_dump_json().encode(),
            content_type="application/json",
            correlation_id=correlation_id,
            reply_to=REPLY_QUEUE,
            # A request nobody picked up in time must not run later, after the caller gave up.
            expiration=self._timeout,
        )
        try:
            async with asyncio.timeout(self._timeout):  # also bounds waiting for a reconnect
                await self._channel.default_exchange.publish(
                    message, routing_key=queue, mandatory=True, timeout=self._timeout
                )
        except (DeliveryError, PublishError) as exc:
            raise Unavailable(f"No service serves {queue} (is it running?).") from exc
        except (AMQPError, ChannelInvalidStateError, ConnectionError, TimeoutError) as exc:
            raise Unavailable("RabbitMQ is unreachable; try again shortly.") from exc

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.get(message.correlation_id or "")
        if future is None or future.done():
            return  # the caller already timed out
        try:
            future.set_result(RpcReply.model_validate_json(message.body))
        except ValidationError:
            log.error("rpc: malformed reply for %s", message.correlation_id)
            future.set_result(RpcReply.failure(502, "A service sent a malformed reply."))
