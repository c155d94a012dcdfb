"""The domain gauges, read from the database when Prometheus scrapes (one statement each).

Task counts reuse the grouped queue query (unfinished tasks only); the outbox lag reads
the oldest unpublished row through the partial index `ix_outbox_unpublished`.
"""

from collections.abc import Mapping

from prometheus_client import Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared import metrics
from shared.db.queries.queue import COUNTS

OUTBOX_LAG = text(
    """
    SELECT coalesce(extract(epoch FROM statement_timestamp() - min(created_at)), 0)
    FROM (SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1) AS o
    """
)
NOW = text("SELECT statement_timestamp()")


async def refresh_outbox_lag(session: AsyncSession) -> None:
    lag = (await session.execute(OUTBOX_LAG)).scalar_one()
    metrics.OUTBOX_LAG_SECONDS.set(max(0.0, float(lag)))


async def refresh_task_gauges(session: AsyncSession) -> None:
    now = (await session.execute(NOW)).scalar_one()
    rows = (await session.execute(COUNTS)).all()
    tasks: dict[tuple[str, ...], float] = {}
    oldest: dict[str, float] = {}
    for row in rows:
        tasks[("idle", row.platform, row.arch)] = row.idle
        tasks[("started", row.platform, row.arch)] = row.started
        wait = 0.0
        if row.oldest_runnable is not None:
            wait = max(0.0, (now - row.oldest_runnable).total_seconds())
        oldest[row.arch] = max(wait, oldest.get(row.arch, 0.0))
    _set_all(metrics.TASKS, tasks)
    _set_all(metrics.OLDEST_IDLE_SECONDS, {(arch,): wait for arch, wait in oldest.items()})


def _set_all(gauge: Gauge, values: Mapping[tuple[str, ...], float]) -> None:
    """Set these series; a series seen before but absent now (its tasks all finished)
    drops to 0 rather than keeping its last value."""
    for labels in _known(gauge) - values.keys():
        gauge.labels(*labels).set(0)
    for labels, value in values.items():
        gauge.labels(*labels).set(value)


def _known(gauge: Gauge) -> set[tuple[str, ...]]:
    return {
        tuple(sample.labels[name] for name in gauge._labelnames)
        for metric in gauge.collect()
        for sample in metric.samples
    }
