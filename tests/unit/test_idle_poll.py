"""get_task's idle check decides who answers a poll (api_gateway/idle_poll.py)."""

from typing import Any

import pytest

from api_gateway import idle_poll
from api_gateway.idle_poll import NO_TASK, RunnableCheck, next_task
from shared.contracts.build_node import GetTask
from shared.contracts.messages import Actor

POLL = GetTask(
    actor=Actor(user_id=1, name="node", kind="node", node_id="n1"), supported_arches=["x86_64"]
)
TASK = b'{"id":7}'


class Check(RunnableCheck):
    """The check's answers from a list, in order; an exception is raised."""

    def __init__(self, *answers: bool | Exception) -> None:
        super().__init__("postgresql+asyncpg://nowhere/none", size=1)
        self.answers = list(answers)
        self.asked = 0

    async def nothing_runnable(self, arches: list[str]) -> bool:
        self.asked += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Scheduler:
    def __init__(self, *answers: bytes) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def call_json(self, spec: Any, request: Any) -> bytes:
        self.calls += 1
        return self.answers.pop(0)


async def test_nothing_runnable_is_answered_without_the_scheduler() -> None:
    check, scheduler = Check(True), Scheduler()
    assert await next_task(check, scheduler, POLL) == NO_TASK  # type: ignore[arg-type]
    assert scheduler.calls == 0


async def test_after_a_task_was_handed_out_polls_go_straight_to_the_scheduler_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr("api_gateway.idle_poll.time.monotonic", lambda: now[0])
    check, scheduler = Check(False, True), Scheduler(TASK, NO_TASK, NO_TASK)
    assert await next_task(check, scheduler, POLL) == TASK  # type: ignore[arg-type]
    now[0] += idle_poll.BUSY_SECONDS / 2
    assert await next_task(check, scheduler, POLL) == NO_TASK  # type: ignore[arg-type]
    assert (check.asked, scheduler.calls) == (1, 2)  # the second poll skipped the check
    now[0] += idle_poll.BUSY_SECONDS  # the scheduler's null did not extend the busy spell
    assert await next_task(check, scheduler, POLL) == NO_TASK  # type: ignore[arg-type]
    assert (check.asked, scheduler.calls) == (2, 2)


@pytest.mark.parametrize("failure", [OSError("refused"), TimeoutError()])
async def test_a_check_that_fails_leaves_the_poll_to_the_scheduler(failure: Exception) -> None:
    check, scheduler = Check(failure), Scheduler(TASK)
    assert await next_task(check, scheduler, POLL) == TASK  # type: ignore[arg-type]
    assert scheduler.calls == 1
