"""Consumer-side dedupe: an event's effects and its inbox row commit together."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import InboxMessage
from shared.db.session import SessionFactory, unit_of_work

P = ParamSpec("P")


async def first_delivery(session: AsyncSession, consumer: str, message_id: str | None) -> bool:
    """True the first time `consumer` sees `message_id` (in this transaction's view)."""
    if not message_id:
        raise ValueError("event without a message id cannot be deduplicated")
    inserted = await session.execute(
        insert(InboxMessage)
        .values(consumer=consumer, message_id=uuid.UUID(message_id))
        .on_conflict_do_nothing()
        .returning(InboxMessage.message_id)
    )
    return inserted.first() is not None


async def handle_once(
    sessions: SessionFactory,
    consumer: str,
    message_id: str | None,
    operation: Callable[Concatenate[AsyncSession, P], Awaitable[None]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> None:
    """Run an event's effects once per message id, in one transaction with the inbox row."""
    async with unit_of_work(sessions) as session:
        if await first_delivery(session, consumer, message_id):
            await operation(session, *args, **kwargs)
