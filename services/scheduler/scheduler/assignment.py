"""Handing the oldest eligible task to a node: one statement, one round trip (decision 0008).

The statement picks the oldest runnable idle task of an arch the node builds (SKIP LOCKED,
so any number of replicas pass each other), starts it with a lease, records
`build_task.assigned` in the outbox and returns the stored Task body. It runs on its own
small asyncpg pool in autocommit: the statement is its own transaction.
"""

import json
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler import task_bodies
from shared import correlation
from shared.db.models import BuildTask
from shared.db.models.builds import RUNNABLE_FOR_ARCHES
from shared.db.session import DbLimits, SessionFactory, StatementPool, in_transaction
from shared.errors import Unavailable
from shared.messaging.outbox import NOTIFY_CHANNEL

# The payload is BuildTaskAssigned as pydantic dumps it (occurred_at in UTC, ISO 8601).
# The arch test is written so that no index can serve it: the only plan left is the partial
# index of runnable tasks in id order. With `arch = ANY(...)` and statistics older than a
# burst of new tasks, PostgreSQL chose a BitmapAnd with the feed's (arch, build_id) index,
# which sorts every runnable task and cannot skip dead index entries (20 ms per empty claim).
CLAIM_NEXT_TASK = f"""
WITH picked AS (
    SELECT id FROM build_tasks
    WHERE {RUNNABLE_FOR_ARCHES}
    ORDER BY id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE build_tasks AS t
    SET status = 1,
        attempt = t.attempt + 1,
        ts = now(),
        lease_expires_at = now() + make_interval(secs => $2::double precision),
        node_id = $3::text
    FROM picked
    WHERE t.id = picked.id
    RETURNING t.id, t.build_id, t.attempt, t.arch, t.task_body
), recorded AS (
    INSERT INTO outbox (message_id, routing_key, payload, correlation_id)
    SELECT gen_random_uuid(), 'build_task.assigned', jsonb_build_object(
        'occurred_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'task_id', id, 'build_id', build_id, 'attempt', attempt, 'arch', arch,
        'node_id', $3::text), $5::text
    FROM claimed
)
SELECT id, task_body::text AS body, pg_notify($4, '') FROM claimed
"""  # noqa: S608 (a constant predicate, no input)


UNREACHABLE = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


@dataclass(frozen=True)
class Claim:
    arches: list[str]
    node_id: str | None
    lease_seconds: int


class ClaimPool:
    """The scheduler's connections for claims; the rest of its work uses SQLAlchemy."""

    def __init__(self, database_url: str, size: int, limits: DbLimits | None = None) -> None:
        self._statements = StatementPool(
            database_url,
            size,
            application_name="albs-scheduler-claims",
            limits=limits or DbLimits(),
        )

    async def start(self) -> None:
        await self._statements.get()

    async def stop(self) -> None:
        await self._statements.close()

    async def claim(self, claim: Claim) -> tuple[int, str | None] | None:
        """The claimed task's id and stored body (None for tasks made runnable before 0003)."""
        try:
            pool = await self._statements.get()
            row = await pool.fetchrow(
                CLAIM_NEXT_TASK,
                claim.arches,
                float(claim.lease_seconds),
                claim.node_id,
                NOTIFY_CHANNEL,
                correlation.current(),  # the node's get_task request
            )
        except UNREACHABLE as exc:
            raise Unavailable("The database is unavailable; try again shortly.") from exc
        return None if row is None else (row["id"], row["body"])


async def assign_next_task(pool: ClaimPool, sessions: SessionFactory, claim: Claim) -> str | None:
    """The Task body for the node as JSON, or None when nothing is runnable for its arches."""
    claimed = await pool.claim(claim)
    if claimed is None:
        return None
    task_id, body = claimed
    if body is None:
        return json.dumps(await in_transaction(sessions, build_missing_body, task_id))
    return body


async def build_missing_body(session: AsyncSession, task_id: int) -> dict[str, Any]:
    """A task made runnable before bodies were stored: build its body now, and keep it."""
    await task_bodies.store_bodies(session, BuildTask.id == task_id)
    stored: dict[str, Any] | None = await session.scalar(
        select(BuildTask.task_body).where(BuildTask.id == task_id)
    )
    assert stored is not None
    return stored
