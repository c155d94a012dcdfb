"""Waiting for Pulp tasks: every task the process waits for is polled in one request.

With a backlog, a process waits for dozens of tasks at once; polling each one on its own
cost a request per task per round, and Pulp's two API workers, on the same cores as its
task workers, answered them instead of running tasks. One watcher per client lists all
the tasks waited for (`pulp_href__in`, a few dozen per request) each round instead.
"""

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Json = dict[str, Any]
FAILED_TASK_STATES = ("failed", "canceled", "skipped")
# gunicorn refuses a request line over 4094 bytes; a task href is about 60.
HREFS_PER_REQUEST = 40
FIRST_INTERVAL = 0.05

Fetch = Callable[[list[str]], Awaitable[list[Json]]]


class TaskFailed(Exception):
    """The task ended failed, canceled or skipped; `task` is what Pulp said about it."""

    def __init__(self, task: Json) -> None:
        super().__init__(task.get("state"))
        self.task = task


@dataclass
class _Waited:
    future: asyncio.Future[Json]
    waiters: int = 0
    state: str = "unknown"
    name: str = "?"


@dataclass
class TaskWatcher:
    """Polls the tasks waited for at a growing interval (back to the first when a new task
    comes), up to `max_interval`. `fetch` lists tasks by href; its errors are logged and
    the next round tries again (each waiter has its own time bound)."""

    fetch: Fetch
    max_interval: float
    _waited: dict[str, _Waited] = field(default_factory=dict)
    _runner: asyncio.Task[None] | None = None
    _news: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self, href: str, limit_seconds: float) -> Json:
        """The completed task; TaskFailed, or TimeoutError after `limit_seconds`."""
        waited = self._waited.get(href)
        if waited is None:
            waited = _Waited(asyncio.get_running_loop().create_future())
            self._waited[href] = waited
            self._news.set()
            self._ensure_running()
        waited.waiters += 1
        try:
            return await asyncio.wait_for(asyncio.shield(waited.future), limit_seconds)
        except TimeoutError:
            if waited.future.done():  # closed meanwhile: that error as it is
                raise
            raise TimeoutError(f"{waited.name} ({href}), last state: {waited.state}") from None
        finally:
            waited.waiters -= 1
            if waited.waiters == 0 and self._waited.get(href) is waited:
                del self._waited[href]

    async def close(self) -> None:
        """Stop polling; whoever still waits gets a TimeoutError at once. A later wait (in
        this loop or another one) starts afresh."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        for waited in self._waited.values():
            if not waited.future.done():
                waited.future.set_exception(TimeoutError(f"{waited.name}: the client was closed"))
        self._waited.clear()
        self._news = asyncio.Event()

    def _ensure_running(self) -> None:
        if self._runner is None or self._runner.done():
            # A context of its own: its polls belong to no report's tally.
            self._runner = asyncio.create_task(self._run(), context=contextvars.Context())

    async def _run(self) -> None:
        interval = FIRST_INTERVAL
        while self._waited:
            self._news.clear()
            await self._round()
            try:
                await asyncio.wait_for(self._news.wait(), interval)
                interval = FIRST_INTERVAL
            except TimeoutError:
                interval = min(interval * 1.5, self.max_interval)

    async def _round(self) -> None:
        hrefs = [h for h, w in self._waited.items() if not w.future.done()]
        chunks = [hrefs[i : i + HREFS_PER_REQUEST] for i in range(0, len(hrefs), HREFS_PER_REQUEST)]
        answers = await asyncio.gather(*(self.fetch(c) for c in chunks), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException):
                if not isinstance(answer, Exception):
                    raise answer
                log.warning("polling %d Pulp task(s): %s", len(hrefs), answer)
                continue
            for task in answer:
                self._settle(task)

    def _settle(self, task: Json) -> None:
        waited = self._waited.get(task["pulp_href"])
        if waited is None or waited.future.done():
            return
        waited.state = task["state"]
        waited.name = str(task.get("name") or "?").rsplit(".", 1)[-1]
        if waited.state == "completed":
            waited.future.set_result(task)
        elif waited.state in FAILED_TASK_STATES:
            waited.future.set_exception(TaskFailed(task))
