"""Transactional outbox: events are rows written with the state change, published after commit.

The relay works in three steps, each one statement in autocommit on a PostgreSQL
connection of its own (the one that LISTENs, in the one relay per database that listens),
so no transaction is held while it waits on RabbitMQ: claim a batch (the rows get a lease
in `claimed_until`, so relays of other replicas skip them), publish it concurrently with
publisher confirms and a timeout each, then mark the confirmed rows published.
A row whose publish failed (returned, nacked, timed out) is claimed again after a short
delay. A relay that dies mid-batch leaves its claim to expire; the rows are then published
again with the same message id and consumers drop the duplicate through their inbox.
See docs/decisions/0010-messages-you-can-trust.md.
"""

import asyncio
import contextlib
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
from shared.db.session import DbLimits, asyncpg_params
from shared.periodic import PeriodicJob

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "albs_outbox"
# The session advisory lock of the one relay per database that LISTENs ("albsoutb").
LISTENER_LOCK = 0x616C_6273_6F75_7462
TAKE_LISTENER_LOCK = "SELECT pg_try_advisory_lock($1::bigint)"
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
    # A NOTIFY comes with every committed transaction that wrote events (one per get_task
    # claim): waiting this long after one lets a burst be published as one batch.
    settle_seconds: float = 0.01
    publish_timeout: float = 5.0
    # Longer than a whole batch can take (publish_timeout bounds each publish).
    claim_seconds: float = 30.0
    retry_seconds: float = 1.0


# Each is one statement in autocommit on the relay's own connection: no BEGIN, no COMMIT,
# no pool check-out (decision 0010).
CLAIM = """
UPDATE outbox SET claimed_until = now() + make_interval(secs => $1::double precision)
WHERE id IN (
    SELECT id FROM outbox
    WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY id LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING id, message_id, routing_key, payload::text, correlation_id
"""
MARK_PUBLISHED = (
    "UPDATE outbox SET published_at = now(), claimed_until = NULL WHERE id = ANY($1::bigint[])"
)
RETRY_LATER = (
    "UPDATE outbox SET claimed_until = now() + make_interval(secs => $2::double precision) "
    "WHERE id = ANY($1::bigint[])"
)


class OutboxRelay:
    def __init__(
        self,
        broker: RabbitBroker,
        topology: Topology,
        *,
        database_url: str,
        settings: RelaySettings | None = None,
        limits: DbLimits | None = None,
    ) -> None:
        self._broker = broker
        self._topology = topology
        self._database_url = database_url
        self._settings = settings or RelaySettings()
        self._limits = limits or DbLimits()
        self._job = PeriodicJob(
            "outbox-relay",
            self._drain,
            self._settings.poll_seconds,
            settle_seconds=self._settings.settle_seconds,
        )
        # One connection for LISTEN and for the relay's own statements.
        self._connection: asyncpg.Connection | None = None
        self._listening = False
        self._exchange: AbstractExchange | None = None

    @property
    def listening(self) -> bool:
        """Whether this relay is the one of its database that NOTIFY wakes."""
        return self._listening

    async def publish_pending(self) -> int:
        """Claim, publish and mark one batch; returns how many were published."""
        connection = await self._connect()
        batch = await self._claim(connection)
        if not batch:
            return 0
        outcomes = await asyncio.gather(*(self._publish(event) for event in batch))
        published = [e.id for e, ok in zip(batch, outcomes, strict=True) if ok]
        failed = [e.id for e, ok in zip(batch, outcomes, strict=True) if not ok]
        if published:
            await connection.execute(MARK_PUBLISHED, published)
        if failed:
            await connection.execute(RETRY_LATER, failed, self._settings.retry_seconds)
            log.warning(
                "outbox relay: %d of %d events not confirmed, retrying", len(failed), len(batch)
            )
        return len(published)

    async def start(self) -> None:
        """A busy PostgreSQL (no connection slot left) must not stop the service: the relay
        then tries again on each pass, every `poll_seconds`."""
        try:
            await self._connect()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("outbox relay: cannot connect yet (%s); trying again shortly", exc)
        self._job.start()

    async def stop(self) -> None:
        await self._job.stop()
        await self._disconnect()

    async def _drain(self) -> None:
        try:
            while await self.publish_pending() == self._settings.batch_size:
                pass
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
            await self._disconnect()  # the next pass connects again
            raise

    async def _claim(self, connection: asyncpg.Connection) -> list[PendingEvent]:
        rows = await connection.fetch(
            CLAIM, self._settings.claim_seconds, self._settings.batch_size
        )
        return sorted((PendingEvent(*row) for row in rows), key=lambda event: event.id)

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

    async def _connect(self) -> asyncpg.Connection:
        if self._connection is not None and not self._connection.is_closed():
            if not self._listening:
                await self._listen_if_first(self._connection)
            return self._connection
        limits = self._limits
        connection = await asyncpg.connect(
            **asyncpg_params(self._database_url),
            timeout=limits.connect_timeout,
            server_settings={
                "application_name": "albs-outbox-relay",
                "statement_timeout": str(int(limits.statement_timeout * 1000)),
                "lock_timeout": str(int(limits.lock_timeout * 1000)),
            },
        )
        self._connection = connection
        await self._listen_if_first(connection)
        return connection

    async def _listen_if_first(self, connection: asyncpg.Connection) -> None:
        """Every commit that writes events (each get_task claim) sends a NOTIFY, and a
        wake-up costs a relay a pass. One relay per database listens: the one holding the
        advisory lock, for as long as its connection lives. The others pass every
        `poll_seconds` and try to take the lock each time, so when the listener dies
        (PostgreSQL frees the lock with its session) another one takes over within that."""
        if await connection.fetchval(TAKE_LISTENER_LOCK, LISTENER_LOCK):
            await connection.add_listener(NOTIFY_CHANNEL, self._wake)
            self._listening = True

    def _wake(self, *_: object) -> None:
        self._job.wake.set()

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._listening = False
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=self._limits.connect_timeout)
