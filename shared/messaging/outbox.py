"""Transactional outbox: events are rows written with the state change, published after commit.

The relay works in three short steps, none of which holds a transaction while it waits on
RabbitMQ: claim a batch (one statement, committed: the rows get a lease in `claimed_until`,
so relays of other replicas skip them), publish the batch concurrently with publisher
confirms and a timeout each, then mark the confirmed rows published in one statement.
A row whose publish failed (returned, nacked, timed out) is claimed again after a short
delay. A relay that dies mid-batch leaves its claim to expire; the rows are then published
again with the same message id and consumers drop the duplicate through their inbox.
See docs/decisions/0010-messages-you-can-trust.md.
"""

import asyncio
import logging
import uuid
from dataclasses import dataclass

import aio_pika
import asyncpg
from aio_pika.abc import AbstractExchange
from aiormq import spec
from faststream.rabbit import RabbitBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared import correlation
from shared.contracts.messages import Event
from shared.contracts.topology import Topology, is_subscribed
from shared.db.models import OutboxMessage
from shared.db.session import SessionFactory, asyncpg_params, unit_of_work
from shared.periodic import PeriodicJob

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "albs_outbox"
_NOTIFIED = "outbox_notified_in"


async def add_event(session: AsyncSession, event: Event) -> uuid.UUID:
    """Record an event in the caller's transaction; it is published only if that commits."""
    message_id = uuid.uuid4()
    session.add(
        OutboxMessage(
            message_id=message_id,
            routing_key=event.routing_key,
            payload=event.model_dump(mode="json"),
            correlation_id=correlation.current(),
        )
    )
    # Delivered by PostgreSQL at commit, never for a rolled-back transaction; one per
    # transaction is enough (PostgreSQL folds repeats anyway, but each costs a round trip).
    transaction = session.get_nested_transaction() or session.get_transaction()
    if session.info.get(_NOTIFIED) is not transaction:
        await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
        session.info[_NOTIFIED] = transaction
    return message_id


@dataclass(frozen=True)
class PendingEvent:
    id: int
    message_id: uuid.UUID
    routing_key: str
    payload: str
    correlation_id: str | None = None


@dataclass(frozen=True)
class RelaySettings:
    batch_size: int = 500
    poll_seconds: float = 1.0
    publish_timeout: float = 5.0
    # Longer than a whole batch can take (publish_timeout bounds each publish).
    claim_seconds: float = 30.0
    retry_seconds: float = 1.0


CLAIM = text(
    """
    UPDATE outbox SET claimed_until = now() + make_interval(secs => :claim_seconds)
    WHERE id IN (
        SELECT id FROM outbox
        WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
        ORDER BY id LIMIT :batch_size
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, message_id, routing_key, payload::text, correlation_id
    """
)
MARK_PUBLISHED = text(
    "UPDATE outbox SET published_at = now(), claimed_until = NULL WHERE id = ANY(:ids)"
)
RETRY_LATER = text(
    "UPDATE outbox SET claimed_until = now() + make_interval(secs => :retry_seconds) "
    "WHERE id = ANY(:ids)"
)


class OutboxRelay:
    def __init__(
        self,
        session_factory: SessionFactory,
        broker: RabbitBroker,
        topology: Topology,
        *,
        database_url: str,
        settings: RelaySettings | None = None,
    ) -> None:
        self._sessions = session_factory
        self._broker = broker
        self._topology = topology
        self._database_url = database_url
        self._settings = settings or RelaySettings()
        self._job = PeriodicJob("outbox-relay", self._drain, self._settings.poll_seconds)
        self._listener: asyncpg.Connection | None = None
        self._exchange: AbstractExchange | None = None

    async def publish_pending(self) -> int:
        """Claim, publish and mark one batch; returns how many were published."""
        batch = await self._claim()
        if not batch:
            return 0
        outcomes = await asyncio.gather(*(self._publish(event) for event in batch))
        published = [e.id for e, ok in zip(batch, outcomes, strict=True) if ok]
        failed = [e.id for e, ok in zip(batch, outcomes, strict=True) if not ok]
        async with unit_of_work(self._sessions) as session:
            if published:
                await session.execute(MARK_PUBLISHED, {"ids": published})
            if failed:
                await session.execute(
                    RETRY_LATER, {"ids": failed, "retry_seconds": self._settings.retry_seconds}
                )
        if failed:
            log.warning(
                "outbox relay: %d of %d events not confirmed, retrying", len(failed), len(batch)
            )
        return len(published)

    async def start(self) -> None:
        await self._try_listen()
        self._job.start()

    async def _try_listen(self) -> None:
        """A busy PostgreSQL (no connection slot left) must not stop the service: the relay
        polls every `poll_seconds` meanwhile and tries LISTEN again on each pass."""
        try:
            await self._listen()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("outbox relay: cannot LISTEN yet (%s); polling meanwhile", exc)
            self._listener = None

    async def stop(self) -> None:
        await self._job.stop()
        if self._listener is not None:
            await self._listener.close()
            self._listener = None

    async def _drain(self) -> None:
        if self._listener is None or self._listener.is_closed():
            await self._try_listen()
        while await self.publish_pending() == self._settings.batch_size:
            pass

    async def _claim(self) -> list[PendingEvent]:
        async with unit_of_work(self._sessions) as session:
            rows = await session.execute(
                CLAIM,
                {
                    "claim_seconds": self._settings.claim_seconds,
                    "batch_size": self._settings.batch_size,
                },
            )
            batch = [PendingEvent(*row) for row in rows]
        batch.sort(key=lambda event: event.id)
        return batch

    async def _publish(self, event: PendingEvent) -> bool:
        """True once RabbitMQ confirmed it; returned, refused or timed out is False."""
        timeout = self._settings.publish_timeout
        message = aio_pika.Message(
            body=event.payload.encode(),
            content_type="application/json",
            message_id=str(event.message_id),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={correlation.MESSAGE_HEADER: event.correlation_id}
            if event.correlation_id
            else None,
        )
        try:
            async with asyncio.timeout(timeout):
                exchange = await self._events_exchange()
                confirmation = await exchange.publish(
                    message,
                    routing_key=event.routing_key,
                    # Unroutable is a failure for events somebody consumes; the others
                    # are announcements nobody subscribed to (yet).
                    mandatory=is_subscribed(event.routing_key),
                    timeout=timeout,
                )
        except Exception as exc:
            log.warning(
                "outbox relay: %s %s not published: %r", event.routing_key, event.message_id, exc
            )
            return False
        if isinstance(confirmation, spec.Basic.Ack):
            return True
        log.warning(
            "outbox relay: %s %s was returned unrouted (%s)",
            event.routing_key,
            event.message_id,
            type(confirmation).__name__,
        )
        return False

    async def _events_exchange(self) -> AbstractExchange:
        # aio-pika directly: FastStream's publish path costs more CPU per message than the
        # broker round trip, and the relay must keep up with every get_task claim.
        if self._exchange is None:
            self._exchange = await self._broker.declare_exchange(self._topology.events)
        return self._exchange

    async def _listen(self) -> None:
        self._listener = await asyncpg.connect(
            **asyncpg_params(self._database_url),
            timeout=5,
            server_settings={"application_name": "albs-outbox-relay"},
        )
        await self._listener.add_listener(NOTIFY_CHANNEL, lambda *_: self._job.wake.set())
