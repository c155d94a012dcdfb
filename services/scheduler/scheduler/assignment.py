"""Handing the oldest eligible tasks to nodes: one statement per batch of waiting requests
(decision 0008).

The statement picks the oldest runnable idle tasks of the arches the nodes build (SKIP
LOCKED, so any number of replicas pass each other), starts them with a lease, records
`build_task.assigned` in the outbox and returns the stored Task bodies. It runs on its own
small asyncpg pool in autocommit: the statement is its own transaction. Requests that arrive
while the pool's statements are running wait and then go together, as one statement and one
commit (group commit): under load a claim costs PostgreSQL a fraction of a round trip, and a
lone request still goes at once.
"""

import asyncio
import contextvars
import json
from dataclasses import dataclass, field
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

# $3 and $5 hold one node id and one correlation id per request of the batch; request n
# (from 1) gets the n-th oldest task picked, and the requests after the last task picked get
# nothing. The payload is BuildTaskAssigned as pydantic dumps it (occurred_at in UTC, ISO
# 8601). The arch test is written so that no index can serve it: the only plan left is the
# partial index of runnable tasks in id order. With `arch = ANY(...)` and statistics older
# than a burst of new tasks, PostgreSQL chose a BitmapAnd with the feed's (arch, build_id)
# index, which sorts every runnable task and cannot skip dead index entries (20 ms per
# empty claim).
CLAIM_NEXT_TASKS = f"""
WITH picked AS (
    SELECT id, row_number() OVER (ORDER BY id) AS n FROM (
        SELECT id FROM build_tasks
        WHERE {RUNNABLE_FOR_ARCHES}
        ORDER BY id
        LIMIT cardinality($3::text[])
        FOR UPDATE SKIP LOCKED
    ) AS locked
), wanted AS (
    SELECT * FROM unnest($3::text[], $5::text[]) WITH ORDINALITY AS w(node_id, correlation_id, n)
), claimed AS (
    UPDATE build_tasks AS t
    SET status = 1,
        attempt = t.attempt + 1,
        ts = now(),
        lease_expires_at = now() + make_interval(secs => $2::double precision),
        node_id = wanted.node_id
    FROM picked JOIN wanted USING (n)
    WHERE t.id = picked.id
    RETURNING t.id, t.build_id, t.attempt, t.arch, t.task_body, wanted.n, wanted.node_id,
        wanted.correlation_id
), recorded AS (
    INSERT INTO outbox (message_id, routing_key, payload, correlation_id)
    SELECT gen_random_uuid(), 'build_task.assigned', jsonb_build_object(
        'occurred_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'task_id', id, 'build_id', build_id, 'attempt', attempt, 'arch', arch,
        'node_id', node_id), correlation_id
    FROM claimed
)
SELECT n, id, task_body::text AS body, pg_notify($4, '') FROM claimed
"""  # noqa: S608 (a constant predicate, no input)

# More requests than a replica's prefetch never wait at once; the bound is a safety net.
MAX_BATCH = 32

UNREACHABLE = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)

Claimed = tuple[int, str | None]


@dataclass(frozen=True)
class Claim:
    arches: list[str]
    node_id: str | None
    lease_seconds: int

    @property
    def kind(self) -> tuple[tuple[str, ...], int]:
        """Claims of one kind can go in one statement."""
        return tuple(self.arches), self.lease_seconds


@dataclass
class Waiting:
    claim: Claim
    correlation_id: str | None
    answer: "asyncio.Future[Claimed | None]" = field(repr=False)


def take_batch(waiting: list[Waiting], limit: int) -> tuple[list[Waiting], list[Waiting]]:
    """The oldest waiting request with up to `limit - 1` later ones of its kind, and the rest,
    each in arrival order."""
    kind = waiting[0].claim.kind
    batch: list[Waiting] = []
    rest: list[Waiting] = []
    for request in waiting:
        if len(batch) < limit and request.claim.kind == kind:
            batch.append(request)
        else:
            rest.append(request)
    return batch, rest


class ClaimPool:
    """The scheduler's connections for claims; the rest of its work uses SQLAlchemy. At most
    `size` claim statements run at once; requests arriving meanwhile wait for the next one."""

    def __init__(
        self,
        database_url: str,
        size: int,
        limits: DbLimits | None = None,
        *,
        batch_limit: int = MAX_BATCH,
    ) -> None:
        self._statements = StatementPool(
            database_url,
            size,
            application_name="albs-scheduler-claims",
            limits=limits or DbLimits(),
        )
        self._size = size
        self._batch_limit = batch_limit
        self._waiting: list[Waiting] = []
        self._running = 0
        self._runners: set[asyncio.Task[None]] = set()  # referenced until done

    async def start(self) -> None:
        await self._statements.get()

    async def stop(self) -> None:
        await self._statements.close()

    async def claim(self, claim: Claim) -> Claimed | None:
        """The claimed task's id and stored body (None for tasks made runnable before 0003).

        A request cancelled while it waits for its statement may still get a task; the task
        comes back when its lease expires, as when a reply is lost."""
        answer: asyncio.Future[Claimed | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(Waiting(claim, correlation.current(), answer))
        if self._running < self._size:
            self._running += 1
            # A context of its own: the runner works for many requests, not for this one.
            runner = asyncio.create_task(self._run(), context=contextvars.Context())
            self._runners.add(runner)
            runner.add_done_callback(self._runners.discard)
        return await answer

    async def _run(self) -> None:
        # The loop's last test of `_waiting` and the count going down happen with no await
        # between them, so a request appended later always finds a runner or starts one.
        try:
            while self._waiting:
                batch, self._waiting = take_batch(self._waiting, self._batch_limit)
                await self._answer(batch)
        finally:
            self._running -= 1

    async def _answer(self, batch: list[Waiting]) -> None:
        try:
            results = await self._claim_batch(batch)
        except Exception as exc:
            for request in batch:
                if not request.answer.done():
                    request.answer.set_exception(exc)
            return
        except BaseException:  # the runner cancelled: its requests must not wait forever
            for request in batch:
                request.answer.cancel()
            raise
        for request, result in zip(batch, results, strict=True):
            if not request.answer.done():
                request.answer.set_result(result)

    async def _claim_batch(self, batch: list[Waiting]) -> list[Claimed | None]:
        first = batch[0].claim
        try:
            pool = await self._statements.get()
            rows = await pool.fetch(
                CLAIM_NEXT_TASKS,
                first.arches,
                float(first.lease_seconds),
                [request.claim.node_id for request in batch],
                NOTIFY_CHANNEL,
                [request.correlation_id for request in batch],  # each node's get_task request
            )
        except UNREACHABLE as exc:
            raise Unavailable("The database is unavailable; try again shortly.") from exc
        claimed = {row["n"]: (row["id"], row["body"]) for row in rows}
        return [claimed.get(position) for position in range(1, len(batch) + 1)]


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
