"""The one retry policy: jittered exponential backoff, bounded by attempts and a deadline.

Only what `retry_on` accepts is retried; anything else, and the last failure once the
attempts or the deadline are used up, is raised as it was (never wrapped in RetryError).
"""

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_never,
    wait_random_exponential,
)
from tenacity.stop import stop_base

log = logging.getLogger(__name__)
T = TypeVar("T")


def _log_retry(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        outcome = state.outcome
        problem = outcome.exception() if outcome is not None else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: attempt %d failed (%r); retrying in %.1f s",
            what,
            state.attempt_number,
            problem,
            wait,
        )

    return before_sleep


async def retrying(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    retry_on: Callable[[BaseException], bool],
    attempts: int | None = None,
    deadline_seconds: float | None = None,
    first_wait: float = 0.2,
    max_wait: float = 30.0,
) -> T:
    """Run `operation` until it succeeds, retrying failures `retry_on` accepts."""
    stop: stop_base = stop_never
    if deadline_seconds is not None:
        stop = stop | stop_after_delay(deadline_seconds)
    if attempts is not None:
        stop = stop | stop_after_attempt(attempts)
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(retry_on),
        wait=wait_random_exponential(multiplier=first_wait, max=max_wait),
        stop=stop,
        reraise=True,
        before_sleep=_log_retry(what),
    ):
        with attempt:
            return await operation()
    raise AssertionError("unreachable: tenacity either returns or re-raises")
