"""The lease reaper: a periodic job in every scheduler replica."""

import logging

from scheduler.leases import requeue_expired
from shared import metrics
from shared.db.session import SessionFactory, in_transaction
from shared.periodic import PeriodicJob

log = logging.getLogger(__name__)


class Reaper:
    def __init__(self, sessions: SessionFactory, interval_seconds: float) -> None:
        self._sessions = sessions
        self.job = PeriodicJob("lease-reaper", self.reap_once, interval_seconds)

    async def reap_once(self) -> int:
        count = await in_transaction(self._sessions, requeue_expired)
        if count:
            metrics.LEASES_EXPIRED.inc(count)
            log.info("requeued %d task(s) whose lease expired", count)
        return count
