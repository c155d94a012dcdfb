"""A concurrent RPC client (and event publisher) on aio-pika.

FastStream's `broker.request()` holds one lock per process for each round trip, so
every RPC of a gateway would wait for the one before it. Here one consumer on
RabbitMQ's direct reply-to pseudo-queue serves all calls; each call waits on its
own future, found again by correlation id. See docs/decisions/0001-rpc-client.md.

It also watches how many consumers each RPC queue has (a passive declare every second on
a connection of its own), so a call that nobody could answer fails at once with 503
instead of after the whole timeout (docs/decisions/0011-request-path.md).
"""

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aio_pika.exceptions import (
    AMQPError,
    ChannelClosed,
    ChannelInvalidStateError,
    DeliveryError,
    PublishError,
)
from pydantic import BaseModel, ValidationError

from shared import correlation, metrics
from shared.contracts.messages import Event, RpcReply, RpcSpec
from shared.contracts.topology import Topology
from shared.errors import Unavailable, error_for_status
from shared.messaging.declare import declare_all

log = logging.getLogger(__name__)

REPLY_QUEUE = "amq.rabbitmq.reply-to"
# A successful reply as the responders write it (pydantic's dump of RpcReply, or
# shared.messaging.rpc_server.reply_json): its result is passed on without being parsed.
_OK_HEAD = b'{"ok":true,"result":'
_OK_TAIL = b',"error":null}'
Res = TypeVar("Res", bound=BaseModel)


class RpcTimeout(Unavailable):
    """No reply within the timeout (counted apart from the other 503s)."""


class RpcClient:
    def __init__(
        self,
        amqp_url: str,
        topology: Topology,
        *,
        timeout: float,
        watched: Sequence[RpcSpec[Any, Any]] = (),
        check_interval: float = 1.0,
    ) -> None:
        self._url = amqp_url
        self._topology = topology
        self._timeout = timeout
        self._pending: dict[str, asyncio.Future[RpcReply | bytes]] = {}
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._events: AbstractExchange | None = None
        self._watched = {topology.rpc_queue(spec).name: spec.name for spec in watched}
        self._check_interval = check_interval
        # Consumers per RPC queue as last seen; a queue missing here is not known yet.
        self._consumers: dict[str, int] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._probe: AbstractConnection | None = None
        self._looking: dict[str, asyncio.Future[int | None]] = {}

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
        if self._watched:
            await self._count_consumers()
            self._watcher = asyncio.create_task(self._watch_consumers(), name="rpc-consumers")

    def consumers(self) -> dict[str, int | None]:
        """Consumers of each watched RPC by name; None while unknown (RabbitMQ unreachable)."""
        return {name: self._consumers.get(queue) for queue, name in self._watched.items()}

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
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self._close_probe()
        for future in self._pending.values():
            future.cancel()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def call(self, spec: RpcSpec[Any, Res], request: BaseModel) -> Res | None:
        """Send one request and wait for its reply; error replies are raised as AlbsError."""
        answer = await self._round_trip(spec, request)
        if isinstance(answer, bytes):
            if spec.result is None or answer == b"null":
                return None
            try:
                return spec.result.model_validate_json(answer)
            except ValidationError:
                log.error("rpc: malformed %s result", spec.name)
                raise error_for_status(502, "A service sent a malformed reply.") from None
        reply = _successful(answer)
        if spec.result is None or reply.result is None:
            return None
        return spec.result.model_validate(reply.result)

    async def call_json(self, spec: RpcSpec[Any, Any], request: BaseModel) -> bytes:
        """The result as JSON, passed on without validating it against `spec.result`: for
        results the service keeps ready to send (get_task's Task body, checked when built)."""
        answer = await self._round_trip(spec, request)
        if isinstance(answer, bytes):
            return answer
        return json.dumps(_successful(answer).result, separators=(",", ":")).encode()

    async def publish_event(self, event: Event) -> None:
        """Publish persistently and return once RabbitMQ confirmed it reached a queue."""
        if self._events is None:
            raise Unavailable("The gateway is not connected to RabbitMQ.")
        message = aio_pika.Message(
            body=event.model_dump_json().encode(),
            content_type="application/json",
            message_id=str(uuid.uuid4()),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=correlation.headers(),
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

    async def _round_trip(self, spec: RpcSpec[Any, Any], request: BaseModel) -> RpcReply | bytes:
        """A successful reply's result as JSON text, or the parsed reply."""
        started = time.perf_counter()
        outcome = "unavailable"
        try:
            reply = await self._send_and_wait(spec, request)
            outcome = "ok" if isinstance(reply, bytes) or reply.ok else "error"
            return reply
        except RpcTimeout:
            outcome = "timeout"
            raise
        finally:
            metrics.RPC_SECONDS.labels(spec.name, outcome).observe(time.perf_counter() - started)
            if outcome == "timeout":
                metrics.RPC_TIMEOUTS.labels(spec.name).inc()

    async def _send_and_wait(self, spec: RpcSpec[Any, Any], request: BaseModel) -> RpcReply | bytes:
        if self._channel is None:
            raise Unavailable("The gateway is not connected to RabbitMQ.")
        queue = self._topology.rpc_queue(spec).name
        if self._consumers.get(queue) == 0 and await self._still_no_consumer(queue):
            raise Unavailable(
                f"No service is taking {spec.name} requests right now (is it running?); "
                "try again shortly."
            )
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[RpcReply | bytes] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        timeout = max(self._timeout, spec.timeout_seconds or 0.0)
        try:
            await self._publish(queue, correlation_id, request, timeout)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RpcTimeout(
                f"No {spec.name} handler answered within {timeout:g} s; "
                "the scheduler may be down or overloaded. Try again."
            ) from None
        finally:
            self._pending.pop(correlation_id, None)

    async def _publish(
        self, queue: str, correlation_id: str, request: BaseModel, wait_seconds: float
    ) -> None:
        assert self._channel is not None
        message = aio_pika.Message(
            body=request.model_dump_json().encode(),
            content_type="application/json",
            correlation_id=correlation_id,
            reply_to=REPLY_QUEUE,
            headers=correlation.headers(),
            # A request nobody picked up in time must not run later, after the caller gave up.
            expiration=wait_seconds,
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

    async def _still_no_consumer(self, queue: str) -> bool:
        """Look again before refusing: a service may have started since the last round.
        Calls that find a look under way share it, so an outage costs one look at a time."""
        looking = self._looking.get(queue)
        if looking is None:
            looking = asyncio.ensure_future(self._count_one(queue))
            self._looking[queue] = looking
            looking.add_done_callback(lambda _: self._looking.pop(queue, None))
        return await asyncio.shield(looking) == 0

    async def _count_one(self, queue: str) -> int | None:
        try:
            channel = await (await self._probe_connection()).channel(publisher_confirms=False)
        except Exception:  # the probe connection is broken: the watcher will replace it
            return self._consumers.get(queue)
        try:
            declared = await asyncio.wait_for(channel.declare_queue(queue, passive=True), 1.0)
            result = declared.declaration_result
            count = (result.consumer_count or 0) if result else 0
        except ChannelClosed:
            return 0
        except Exception:
            return self._consumers.get(queue)
        with contextlib.suppress(Exception):
            await channel.close()
        self._consumers[queue] = count
        return count

    async def _watch_consumers(self) -> None:
        while True:
            await asyncio.sleep(self._check_interval)
            await self._count_consumers()

    async def _count_consumers(self) -> None:
        """One round of passive declares, one per watched RPC queue."""
        try:
            probe = await self._probe_connection()
            channel = await probe.channel(publisher_confirms=False)
            for queue in self._watched:
                try:
                    declared = await asyncio.wait_for(
                        channel.declare_queue(queue, passive=True), self._check_interval
                    )
                except ChannelClosed:  # no such queue: nobody ever served it
                    self._consumers[queue] = 0
                    channel = await probe.channel(publisher_confirms=False)
                    continue
                result = declared.declaration_result
                self._consumers[queue] = (result.consumer_count or 0) if result else 0
            await channel.close()
        except Exception as exc:  # whatever broke (a connection closed under us), look again later
            log.debug("rpc: cannot count consumers: %r", exc)
            self._consumers.clear()
            await self._close_probe()

    async def _probe_connection(self) -> AbstractConnection:
        """A plain connection for passive declares: a declare of a missing queue closes its
        channel, which a robust channel would try to restore forever."""
        if self._probe is None or self._probe.is_closed:
            self._probe = await aio_pika.connect(self._url, timeout=self._check_interval)
        return self._probe

    async def _close_probe(self) -> None:
        if self._probe is not None:
            with contextlib.suppress(Exception):
                await self._probe.close()
            self._probe = None

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.get(message.correlation_id or "")
        if future is None or future.done():
            return  # the caller already timed out
        future.set_result(decode_reply(message.body, message.correlation_id))


def decode_reply(body: bytes, correlation_id: str | None = None) -> RpcReply | bytes:
    """A successful reply's result as the JSON text it is, sliced out of the envelope (a
    Task body is not parsed and dumped again); any other reply parsed."""
    if body.startswith(_OK_HEAD) and body.endswith(_OK_TAIL):
        return body[len(_OK_HEAD) : -len(_OK_TAIL)]
    try:
        return RpcReply.model_validate_json(body)
    except ValidationError:
        log.error("rpc: malformed reply for %s", correlation_id)
        return RpcReply.failure(502, "A service sent a malformed reply.")


def _successful(reply: RpcReply) -> RpcReply:
    """The reply itself, or its error raised as the AlbsError a route answers with."""
    if reply.ok:
        return reply
    error = reply.error
    raise error_for_status(error.status, error.detail) if error else Unavailable("RPC failed")
