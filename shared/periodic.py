"""One background job run every `interval` seconds, with a clean start and stop.

A failed run is logged and the next one comes at the usual time: a periodic job never
dies of one bad pass. `stop()` waits for a run in progress to end (up to `stop_timeout`)
before cancelling it, so a pass is not cut in the middle of its transaction.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]


class PeriodicJob:
    def __init__(
        self,
        name: str,
        job: Job,
        interval_seconds: float,
        *,
        wake: asyncio.Event | None = None,
        settle_seconds: float = 0.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self._job = job
        self._interval = interval_seconds
        # Set by someone who knows there is work now (e.g. a NOTIFY): run before the interval.
        self.wake = wake or asyncio.Event()
        # After a wake-up, wait this long before running, so a burst of wake-ups (one per
        # committed transaction) is served by one run instead of one run each.
        self._settle = settle_seconds
        self._stop_timeout = stop_timeout
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, wait_seconds: float | None = None) -> None:
        """Let a run in progress finish (up to `wait_seconds`, default `stop_timeout`), then end."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self.wake.set()
        try:
            await asyncio.wait_for(
                asyncio.shield(task), self._stop_timeout if wait_seconds is None else wait_seconds
            )
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            self.wake.clear()
            try:
                await self._job()
            except Exception:
                log.exception("%s: the run failed; next one in %.1f s", self.name, self._interval)
            if self._stopping.is_set():
                return
            try:
                await asyncio.wait_for(self.wake.wait(), self._interval)
            except TimeoutError:
                continue
            if self._settle and not self._stopping.is_set():
                await asyncio.sleep(self._settle)
