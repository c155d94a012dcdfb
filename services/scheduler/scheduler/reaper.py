"""The lease reaper: a background loop in every scheduler replica."""

import asyncio
import contextlib
import logging

from scheduler.leases import requeue_expired
from shared.db.session import SessionFactory, in_transaction

log = logging.getLogger(__name__)


class Reaper:
    def __init__(self, sessions: SessionFactory, interval_seconds: float) -> None:
        self._sessions = sessions
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lease-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def reap_once(self) -> int:
        count = await in_transaction(self._sessions, requeue_expired)
        if count:
            log.info("requeued %d task(s) whose lease expired", count)
        return count

    async def _run(self) -> None:
        while True:
            try:
                await self.reap_once()
            except Exception:
                log.exception("reaper: pass failed, will retry")
            await asyncio.sleep(self._interval)
