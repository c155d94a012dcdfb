"""Leases on started tasks: pings extend them, the reaper takes back the ones that ran out."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.build_node import BuildTaskRequeued
from shared.contracts.signing import SignTaskFailed, SignTaskRequeued
from shared.db.models import SignTaskStatus
from shared.messaging.outbox import add_event

# A node that names itself may only extend its own tasks; albs-node sends no identity.
EXTEND_LEASES = text(
    """
    UPDATE build_tasks
    SET ts = now(), lease_expires_at = now() + make_interval(secs => :lease_seconds)
    WHERE id = ANY(:task_ids)
      AND status = 1
      AND (CAST(:node_id AS text) IS NULL OR node_id IS NULL OR node_id = :node_id)
    """
)

# Safe in every replica at once: a row another replica already requeued no longer matches.
# node_id stays: only that node may still report the attempt it lost (results.py).
REQUEUE_EXPIRED = text(
    """
    UPDATE build_tasks AS t
    SET status = 0, lease_expires_at = NULL, ts = NULL
    FROM (
        SELECT id, node_id FROM build_tasks
        WHERE status = 1 AND lease_expires_at < now()
        ORDER BY lease_expires_at
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    ) AS expired
    WHERE t.id = expired.id
    RETURNING t.id, t.build_id, t.attempt, expired.node_id
    """
)


async def extend_leases(
    session: AsyncSession, task_ids: list[int], node_id: str | None, lease_seconds: int
) -> None:
    if task_ids:
        await session.execute(
            EXTEND_LEASES,
            {"task_ids": task_ids, "node_id": node_id, "lease_seconds": lease_seconds},
        )


async def requeue_expired(session: AsyncSession, batch: int = 500) -> int:
    """Return tasks whose lease ran out to the queue; the next claim counts a new attempt."""
    rows = (await session.execute(REQUEUE_EXPIRED, {"batch": batch})).all()
    for task_id, build_id, attempt, node_id in rows:
        await add_event(
            session,
            BuildTaskRequeued(task_id=task_id, build_id=build_id, attempt=attempt, node_id=node_id),
        )
    return len(rows)


# A sign task whose lease ran out goes back to the queue, or fails after its last attempt.
# node_id stays, so that node's late report is refused as coming from a lost lease.
REQUEUE_EXPIRED_SIGN_TASKS = text(
    """
    UPDATE sign_tasks AS t
    SET status = CASE WHEN t.attempt >= :max_attempts THEN 4 ELSE 1 END,
        lease_expires_at = NULL,
        finished_at = CASE WHEN t.attempt >= :max_attempts THEN now() END,
        error_message = CASE WHEN t.attempt >= :max_attempts
            THEN 'The sign node did not report within its lease, ' || t.attempt || ' time(s).'
        END
    FROM (
        SELECT id FROM sign_tasks
        WHERE status = 2 AND lease_expires_at < now()
        ORDER BY lease_expires_at
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    ) AS expired
    WHERE t.id = expired.id
    RETURNING t.id, t.build_id, t.attempt, t.node_id, t.status, t.error_message
    """
)


async def requeue_expired_sign_tasks(
    session: AsyncSession, max_attempts: int, batch: int = 100
) -> int:
    rows = (
        await session.execute(
            REQUEUE_EXPIRED_SIGN_TASKS, {"max_attempts": max_attempts, "batch": batch}
        )
    ).all()
    for task_id, build_id, attempt, node_id, status, error in rows:
        event: SignTaskRequeued | SignTaskFailed = (
            SignTaskFailed(task_id=task_id, build_id=build_id, attempt=attempt, error=error)
            if status == SignTaskStatus.FAILED
            else SignTaskRequeued(
                task_id=task_id, build_id=build_id, attempt=attempt, node_id=node_id
            )
        )
        await add_event(session, event)
    return len(rows)
