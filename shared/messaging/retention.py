"""Retention of the outbox and the inbox: old rows are deleted in bounded batches.

Published outbox rows are kept `outbox_retention_seconds` (only for inspection: a published
row is never sent again). Inbox rows are kept `inbox_retention_seconds`: within that window a
redelivered event is still recognised as a duplicate, so it must exceed by far the longest
time a message can wait in a queue or be redelivered. One batch per transaction; several
replicas may run this at once (SKIP LOCKED: they share the work instead of waiting).
"""

import logging
from dataclasses import dataclass

from sqlalchemy import TextClause, text

from shared.db.session import SessionFactory, unit_of_work

log = logging.getLogger(__name__)

# One run deletes at most this many batches per table; the next run continues.
MAX_BATCHES_PER_RUN = 20

PRUNE_OUTBOX = text(
    """
    DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox
        WHERE published_at < now() - make_interval(secs => :age)
        LIMIT :batch FOR UPDATE SKIP LOCKED
    )
    """
)
PRUNE_INBOX = text(
    """
    DELETE FROM inbox WHERE (consumer, message_id) IN (
        SELECT consumer, message_id FROM inbox
        WHERE processed_at < now() - make_interval(secs => :age)
        LIMIT :batch FOR UPDATE SKIP LOCKED
    )
    """
)


@dataclass(frozen=True)
class Retention:
    outbox_seconds: float
    inbox_seconds: float
    batch_size: int


@dataclass(frozen=True)
class PruneReport:
    outbox: int
    inbox: int


async def prune(sessions: SessionFactory, retention: Retention) -> PruneReport:
    outbox = await _prune_table(sessions, PRUNE_OUTBOX, retention.outbox_seconds, retention)
    inbox = await _prune_table(sessions, PRUNE_INBOX, retention.inbox_seconds, retention)
    if outbox or inbox:
        log.info("retention: deleted %d outbox and %d inbox rows", outbox, inbox)
    return PruneReport(outbox, inbox)


async def _prune_table(
    sessions: SessionFactory, statement: TextClause, age: float, retention: Retention
) -> int:
    total = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        async with unit_of_work(sessions) as session:
            result = await session.execute(statement, {"age": age, "batch": retention.batch_size})
        deleted = int(getattr(result, "rowcount", 0) or 0)
        total += deleted
        if deleted < retention.batch_size:
            break
    return total
