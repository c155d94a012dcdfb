"""Read-side query behind GET /api/v1/queue: counts per platform and arch, nodes at work.

Two statements in one snapshot. The counts read the unfinished tasks only (status 0/1);
the nodes come from the started tasks (partial index `ix_build_tasks_lease`).
"""

from collections import defaultdict
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.queue import NodeOut, NodeTask, QueueGroup, QueueOut

COUNTS = text(
    """
    SELECT p.name AS platform,
           t.arch,
           count(*) FILTER (WHERE t.status = 0) AS idle,
           count(*) FILTER (WHERE t.status = 0 AND t.runnable) AS runnable,
           count(*) FILTER (WHERE t.status = 1) AS started,
           min(t.created_at) FILTER (WHERE t.status = 0 AND t.runnable) AS oldest_runnable
    FROM build_tasks AS t
    JOIN platforms AS p ON p.id = t.platform_id
    WHERE t.status IN (0, 1)
    GROUP BY p.name, t.arch
    ORDER BY p.name, t.arch
    """
)

STARTED = text(
    """
    SELECT t.node_id, t.id, t.build_id, p.name AS platform, t.arch, t.attempt, t.ts,
           t.lease_expires_at, t.lease_expires_at < statement_timestamp() AS expired
    FROM build_tasks AS t
    JOIN platforms AS p ON p.id = t.platform_id
    WHERE t.status = 1
    ORDER BY t.node_id NULLS LAST, t.id
    """
)

# Tasks claimed by a client that sent no identity (albs-node without X-Node-Id and before
# node tokens) are listed under this name.
UNKNOWN_NODE = "(unknown)"


def _wait(now: datetime, since: datetime | None) -> float | None:
    return None if since is None else max(0.0, (now - since).total_seconds())


async def queue_summary(session: AsyncSession) -> QueueOut:
    async with session.begin():
        # One snapshot for both statements, so counts and nodes agree.
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        now: datetime = (await session.execute(text("SELECT statement_timestamp()"))).scalar_one()
        groups = [
            QueueGroup(
                platform=row.platform,
                arch=row.arch,
                idle=row.idle,
                runnable=row.runnable,
                blocked=row.idle - row.runnable,
                started=row.started,
                oldest_runnable_since=row.oldest_runnable,
                oldest_runnable_wait_seconds=_wait(now, row.oldest_runnable),
            )
            for row in (await session.execute(COUNTS)).all()
        ]
        by_node: defaultdict[str, list[NodeTask]] = defaultdict(list)
        for row in (await session.execute(STARTED)).all():
            by_node[row.node_id or UNKNOWN_NODE].append(
                NodeTask(
                    task_id=row.id,
                    build_id=row.build_id,
                    platform=row.platform,
                    arch=row.arch,
                    attempt=row.attempt,
                    last_seen=row.ts,
                    lease_expires_at=row.lease_expires_at,
                    lease_expired=bool(row.expired),
                )
            )
    nodes = [
        NodeOut(
            node_id=node,
            last_seen=max((t.last_seen for t in tasks if t.last_seen), default=None),
            tasks=tasks,
        )
        for node, tasks in by_node.items()
    ]
    oldest = min((g.oldest_runnable_since for g in groups if g.oldest_runnable_since), default=None)
    return QueueOut(
        at=now,
        idle=sum(g.idle for g in groups),
        runnable=sum(g.runnable for g in groups),
        started=sum(g.started for g in groups),
        oldest_runnable_wait_seconds=_wait(now, oldest),
        groups=groups,
        nodes=nodes,
    )
