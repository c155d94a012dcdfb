"""Transactional outbox: events are rows written with the state change, published after commit.

The relay publishes unpublished rows in id order with publisher confirms and persistent
delivery, then marks them. A crash between publish and mark publishes the row again with
the same message id; consumers drop the duplicate through their inbox.
"""

import asyncio
import contextlib
import logging
import uuid

import asyncpg
from faststream.rabbit import RabbitBroker
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.messages import Event
from shared.contracts.topology import Topology
from shared.db.base import utcnow
from shared.db.models import OutboxMessage
from shared.db.session import SessionFactory, unit_of_work

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
        )
    )
    # Delivered by PostgreSQL at commit, never for a rolled-back transaction; one per
    # transaction is enough (PostgreSQL folds repeats anyway, but each costs a round trip).
    transaction = session.get_nested_transaction() or session.get_transaction()
    if session.info.get(_NOTIFIED) is not transaction:
        await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
        session.info[_NOTIFIED] = transaction
    return message_id


class OutboxRelay:
    def __init__(
        self,
        session_factory: SessionFactory,
        broker: RabbitBroker,
        topology: Topology,
        *,
        database_url: str,
        batch_size: int = 100,
        idle_poll_seconds: float = 1.0,
    ) -> None:
        self._sessions = session_factory
        self._broker = broker
        self._topology = topology
        self._database_url = database_url
        self._batch_size = batch_size
        self._idle_poll = idle_poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished events; returns how many were published."""
        async with unit_of_work(self._sessions) as session:
            rows = (
                await session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.published_at.is_(None))
                    .order_by(OutboxMessage.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                await self._broker.publish(
                    row.payload,
                    exchange=self._topology.events,
                    routing_key=row.routing_key,
                    message_id=str(row.message_id),
                    persist=True,
                    content_type="application/json",
                )
                row.published_at = utcnow()
            return len(rows)

    async def start(self) -> None:
        await self._try_listen()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def _try_listen(self) -> None:
        """A busy PostgreSQL (no connection slot left) must not stop the service at start:
        the relay polls every `idle_poll` seconds meanwhile and tries LISTEN again each time."""
        try:
            await self._listen()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("outbox relay: cannot LISTEN yet (%s); polling meanwhile", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None

    async def _listen(self) -> None:
        url = make_url(self._database_url)
        self._listener = await asyncpg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            database=url.database,
        )
        await self._listener.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())

    async def _run(self) -> None:
        while True:
            if self._listener is None:
                await self._try_listen()
            try:
                while await self.publish_pending() == self._batch_size:
                    pass
            except Exception:
                log.exception("outbox relay: publishing failed, will retry")
                await asyncio.sleep(self._idle_poll)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._idle_poll)
