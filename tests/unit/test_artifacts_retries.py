"""The Pulp client's retry policy and call tally, without a Pulp: steps are plain functions."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from artifacts.pulp_api import (
    PulpApi,
    PulpError,
    RetryPolicy,
    Tally,
    Transient,
    _count,
    tally,
    task_failure,
)


def client(**policy: Any) -> PulpApi:
    return PulpApi("http://127.0.0.1:9", "u", "p", retry=RetryPolicy(**policy))


def flaky(failures: int) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    calls: list[int] = []

    async def step() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise Transient("GET /x: ConnectError")
        return "done"

    return calls, step


async def test_a_transient_failure_is_retried_until_the_step_succeeds() -> None:
    calls, step = flaky(3)
    assert await client(retries=5, backoff_seconds=0.001)._step("s", step) == "done"
    assert len(calls) == 4


async def test_the_attempt_bound_ends_the_retries_with_a_readable_error() -> None:
    calls, step = flaky(100)
    with pytest.raises(PulpError, match=r"^s: Pulp is unavailable after 3 attempts \(GET /x"):
        await client(retries=2, backoff_seconds=0.001)._step("s", step)
    assert len(calls) == 3


async def test_the_deadline_ends_the_retries_before_the_attempt_bound() -> None:
    calls, step = flaky(100)
    policy = {"retries": 1000, "backoff_seconds": 0.01, "max_delay_seconds": 0.01}
    with pytest.raises(PulpError, match="unavailable"):
        await asyncio.wait_for(
            client(**policy, deadline_seconds=0.2)._step("s", step),
            timeout=5,
        )
    assert 2 < len(calls) < 1000


async def test_a_pulp_error_is_not_retried() -> None:
    calls: list[int] = []

    async def step() -> str:
        calls.append(1)
        raise PulpError("POST /x answered 400: bad")

    with pytest.raises(PulpError, match=r"^s: POST /x answered 400: bad$"):
        await client(retries=5, backoff_seconds=0.001)._step("s", step)
    assert len(calls) == 1


async def test_the_tally_counts_only_the_calls_of_its_own_block() -> None:
    async def calls(n: int) -> None:
        for _ in range(n):
            _count(calls=1)
            await asyncio.sleep(0)

    async def unit(n: int) -> Tally:
        with tally() as counted:
            await asyncio.gather(calls(n), calls(1))  # tasks started inside count too
            _count(tasks=1)
        return counted

    first, second = await asyncio.gather(unit(2), unit(5))
    assert (first.calls, first.tasks, second.calls, second.tasks) == (3, 1, 6, 1)
    _count(calls=1)  # outside any block: counted nowhere, and no error


def test_a_task_whose_worker_died_is_worth_another_try_a_rejected_one_is_not() -> None:
    died = task_failure("Pulp task t failed", {"reason": "Task process died unexpectedly."})
    rejected = task_failure("Pulp task t failed", {"description": "not an RPM"})
    assert isinstance(died, Transient)
    assert (type(rejected), str(rejected)) == (PulpError, "Pulp task t failed: not an RPM")
