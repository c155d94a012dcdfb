"""get_task's RPC queue served by aio-pika directly, outside FastStream (decision 0008).

Every node polls get_task, mostly to hear "nothing", so per message this consumer does only
what the answer needs: validate the request, claim (one statement), publish the reply,
ack. It keeps what the broker middlewares give every other handler: the correlation id
bound from the message for the claim's outbox row and the log lines, the
`albs_messages_handled_total` / `albs_message_handling_duration_seconds` series under the
same handler label, one DEBUG line per message (get_task is a quiet handler), and error
replies instead of silence. The poison middleware only concerns event queues.
"""

import asyncio
import contextlib
import logging
import time
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from pydantic import ValidationError

from scheduler import assignment
from shared import correlation, metrics
from shared.contracts.build_node import GET_TASK, GetTask
from shared.contracts.messages import RpcReply
from shared.contracts.topology import Topology
from shared.db.session import SessionFactory
from shared.messaging.observe import handler_label, outcome_of
from shared.messaging.rpc_server import reply_json

log = logging.getLogger("albs.messages")
# How long stop() waits for the requests in flight to be answered, as FastStream's
# graceful shutdown does for its subscribers.
STOP_WAIT_SECONDS = 10.0


class GetTaskConsumer:
    def __init__(
        self,
        amqp_url: str,
        topology: Topology,
        claims: assignment.ClaimPool,
        sessions: SessionFactory,
        *,
        lease_seconds: int,
        prefetch: int,
    ) -> None:
        self._url = amqp_url
        self._queue = topology.rpc_queue(GET_TASK)
        self._claims = claims
        self._sessions = sessions
        self._lease_seconds = lease_seconds
        self._prefetch = prefetch
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._tag: str | None = None
        self._handler = handler_label(self._queue.name, topology.prefix)
        self._seconds = metrics.MESSAGE_SECONDS.labels(self._handler)
        self._handled: dict[str, Any] = {}
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        # A robust connection restores the channel, its QoS and the consumer after a
        # reconnect. Replies need no publisher confirms: a lost one is a caller's timeout,
        # exactly as a lost request is.
        self._connection = await aio_pika.connect_robust(self._url)
        self._channel = await self._connection.channel(publisher_confirms=False)
        await self._channel.set_qos(prefetch_count=self._prefetch)
        queue = await self._channel.declare_queue(
            self._queue.name, durable=True, arguments=self._queue.arguments
        )
        self._tag = await queue.consume(self._on_message)

    async def stop(self) -> None:
        """Stop taking requests, let those in flight be answered, then close."""
        if self._channel is not None and self._tag is not None and not self._channel.is_closed:
            queue = await self._channel.get_queue(self._queue.name, ensure=False)
            await queue.cancel(self._tag)
        self._tag = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), STOP_WAIT_SECONDS)
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
            self._channel = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        started = time.perf_counter()
        self._in_flight += 1
        self._idle.clear()
        token = correlation.bind(correlation.from_headers(message.headers))
        outcome = "error"
        try:
            answer = await self.answer(message.body)
            outcome = "ok" if isinstance(answer, bytes) else outcome_of(answer)
            if message.reply_to:
                await self._reply(message.reply_to, message.correlation_id, answer)
            await message.ack()
        except Exception:
            # As FastStream does with a handler that raised: dropped, not redelivered (the
            # caller times out; a claim it made comes back when its lease expires).
            outcome = "error"
            log.exception("get_task: could not answer %s", message.correlation_id)
            with contextlib.suppress(Exception):
                await message.reject()
        finally:
            elapsed = time.perf_counter() - started
            self._count(outcome)
            self._seconds.observe(elapsed)
            level = logging.WARNING if outcome == "error" else logging.DEBUG
            log.log(level, "handled %s: %s in %.0f ms", self._handler, outcome, elapsed * 1000)
            correlation.unbind(token)
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def answer(self, body: bytes) -> RpcReply | bytes:
        try:
            command = GetTask.model_validate_json(body)
        except ValidationError as exc:
            # Only a gateway of another version sends this: it is a bug, not the node's fault.
            log.error("get_task: malformed request: %s", exc)
            return RpcReply.failure(500, "The scheduler could not read the get_task request.")
        claim = assignment.Claim(
            arches=command.supported_arches,
            node_id=command.actor.node_id,
            lease_seconds=self._lease_seconds,
        )
        return await reply_json(assignment.assign_next_task(self._claims, self._sessions, claim))

    async def _reply(
        self, reply_to: str, correlation_id: str | None, answer: RpcReply | bytes
    ) -> None:
        assert self._channel is not None
        body = answer if isinstance(answer, bytes) else answer.model_dump_json().encode()
        await self._channel.default_exchange.publish(
            aio_pika.Message(body, content_type="application/json", correlation_id=correlation_id),
            routing_key=reply_to,
            # RabbitMQ delivers a reply to a direct reply-to address and, with `mandatory`,
            # also returns it as unroutable (aio-pika's default): a frame and a log line each.
            mandatory=False,
        )

    def _count(self, outcome: str) -> None:
        counter = self._handled.get(outcome)
        if counter is None:
            counter = self._handled[outcome] = metrics.MESSAGES_HANDLED.labels(
                self._handler, outcome
            )
        counter.inc()
