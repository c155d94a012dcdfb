"""The Pulp task watcher without a Pulp: `fetch` is a plain function over a dict of states."""

import asyncio

import pytest

from artifacts.pulp_api import _count, tally
from artifacts.pulp_tasks import HREFS_PER_REQUEST, TaskFailed, TaskWatcher

Json = dict[str, object]


class FakeTasks:
    """Task states by href, as Pulp's task list would answer them; records every request."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.requests: list[list[str]] = []
        self.failures = 0

    async def fetch(self, hrefs: list[str]) -> list[Json]:
        self.requests.append(hrefs)
        _count(calls=1)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("refused")
        return [{"pulp_href": h, "state": self.states[h], "name": "x.modify"} for h in hrefs]


async def finish_later(tasks: FakeTasks, hrefs: list[str], state: str, delay: float) -> None:
    await asyncio.sleep(delay)
    for href in hrefs:
        tasks.states[href] = state


async def test_many_tasks_waited_for_at_once_are_polled_together() -> None:
    tasks = FakeTasks()
    hrefs = [f"/t/{n}/" for n in range(HREFS_PER_REQUEST + 5)]
    tasks.states = dict.fromkeys(hrefs, "running")
    watcher = TaskWatcher(tasks.fetch, max_interval=0.02)
    finishing = finish_later(tasks, hrefs, "completed", 0.1)
    done, _ = await asyncio.gather(asyncio.gather(*(watcher.wait(h, 5) for h in hrefs)), finishing)
    assert [t["pulp_href"] for t in done] == hrefs
    # Every round asks for all the tasks in as few requests as the URL length allows.
    assert all(len(r) in (HREFS_PER_REQUEST, 5) for r in tasks.requests)
    assert len(tasks.requests) < 2 * 20  # ~0.1 s of rounds of two requests, not 45 per round
    await watcher.close()


async def test_a_failed_task_fails_its_waiter_only() -> None:
    tasks = FakeTasks()
    tasks.states = {"/t/ok/": "completed", "/t/bad/": "failed"}
    watcher = TaskWatcher(tasks.fetch, max_interval=0.02)
    ok, bad = await asyncio.gather(
        watcher.wait("/t/ok/", 5), watcher.wait("/t/bad/", 5), return_exceptions=True
    )
    assert isinstance(ok, dict)
    assert ok["state"] == "completed"
    assert isinstance(bad, TaskFailed)
    assert bad.task["state"] == "failed"
    await watcher.close()


async def test_a_failed_poll_is_tried_again_in_the_next_round() -> None:
    tasks = FakeTasks()
    tasks.states = {"/t/1/": "completed"}
    tasks.failures = 2
    watcher = TaskWatcher(tasks.fetch, max_interval=0.01)
    assert (await watcher.wait("/t/1/", 5))["state"] == "completed"
    assert len(tasks.requests) == 3
    await watcher.close()


async def test_the_time_bound_names_the_last_state_seen() -> None:
    tasks = FakeTasks()
    tasks.states = {"/t/slow/": "waiting"}
    watcher = TaskWatcher(tasks.fetch, max_interval=0.01)
    with pytest.raises(TimeoutError, match=r"modify \(/t/slow/\), last state: waiting"):
        await watcher.wait("/t/slow/", 0.1)
    await asyncio.sleep(0.05)  # nothing left to wait for: the watcher stops polling
    polled = len(tasks.requests)
    await asyncio.sleep(0.05)
    assert len(tasks.requests) == polled
    await watcher.close()


async def test_the_polls_belong_to_no_units_tally() -> None:
    tasks = FakeTasks()
    tasks.states = {"/t/1/": "running"}
    watcher = TaskWatcher(tasks.fetch, max_interval=0.01)
    with tally() as counted:
        waiting = asyncio.ensure_future(watcher.wait("/t/1/", 5))
        await finish_later(tasks, ["/t/1/"], "completed", 0.05)
        await waiting
    assert tasks.requests
    assert counted.calls == 0
    await watcher.close()


async def test_closing_ends_the_waits_and_a_later_wait_starts_afresh() -> None:
    tasks = FakeTasks()
    tasks.states = {"/t/1/": "running", "/t/2/": "completed"}
    watcher = TaskWatcher(tasks.fetch, max_interval=0.01)
    waiting = asyncio.ensure_future(watcher.wait("/t/1/", 5))
    await asyncio.sleep(0.03)
    await watcher.close()
    with pytest.raises(TimeoutError, match="closed"):
        await waiting
    assert (await watcher.wait("/t/2/", 5))["state"] == "completed"
    await watcher.close()
