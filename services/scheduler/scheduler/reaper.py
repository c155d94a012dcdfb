"""The lease reaper: a periodic job in every scheduler replica."""

import logging

from scheduler.leases import requeue_expired, requeue_expired_sign_tasks
from shared import metrics
from shared.db.session import SessionFactory, in_transaction
from shared.periodic import PeriodicJob

log = logging.getLogger(__name__)


class Reaper:
    def __init__(
        self, sessions: SessionFactory, interval_seconds: float, sign_max_attempts: int = 3
    ) -> None:
        self._sessions = sessions
        self._sign_max_attempts = sign_max_attempts
        self.job = PeriodicJob("lease-reaper", self.reap_once, interval_seconds)

    async def reap_once(self) -> int:
        count = await in_transaction(self._sessions, requeue_expired)
        if count:
            metrics.LEASES_EXPIRED.inc(count)
            log.info("requeued %d task(s) whose lease expired", count)
        signing = await in_transaction(
            self._sessions, requeue_expired_sign_tasks, self._sign_max_attempts
        )
        if signing:
            log.info("took back %d sign task(s) whose lease expired", signing)
        return count + signing
