"""Consumer-side dedupe: an event's effects and its inbox row commit together."""

import uuid

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import InboxMessage


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
