"""Sending created test tasks to ALTS (`POST {alts_url}/tasks/schedule`, CLIENTS §6.1).

A periodic job in every scheduler replica. A pass claims up to the free in-flight slots in
one committed transaction (an advisory lock makes replicas count the slots one at a time;
SKIP LOCKED and the claim lease keep them off each other's rows), then talks to ALTS with
no session open, then records each outcome in its own short transaction. A test is sent
at most once while the replica that claimed it is alive: the claim outlasts the HTTP
timeout. Unreachable ALTS or a 5xx: retried with backoff, the error kept on the task.
A 4xx: ALTS refused that test for good; it fails with ALTS's words.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.checks import retry_delay
from shared.contracts.test_tasks import TestTaskFinished
from shared.db.base import utcnow
from shared.db.models import BuildTask, TestTask, TestTaskStatus
from shared.db.session import SessionFactory, in_transaction
from shared.messaging.outbox import add_event

log = logging.getLogger(__name__)

# First key of the advisory lock under which replicas count ALTS's free slots.
DISPATCH_LOCK = 0x414C5453
CLAIM_MARGIN_SECONDS = 30.0
ERROR_TEXT_MAX = 500


@dataclass(frozen=True)
class AltsConfig:
    url: str
    token: str
    timeout_seconds: float
    max_in_flight: int
    retry_base_seconds: float
    retry_max_seconds: float


@dataclass(frozen=True)
class Claimed:
    id: int
    body: dict[str, Any]
    attempt: int


@dataclass(frozen=True)
class Outcome:
    """`reply` when ALTS took the test; else `error`, and `final` when it refused it."""

    reply: dict[str, Any] | None = None
    error: str | None = None
    final: bool = False


class Dispatcher:
    def __init__(self, sessions: SessionFactory, config: AltsConfig) -> None:
        self._sessions = sessions
        self._config = config
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self._config.url.rstrip("/"),
            timeout=self._config.timeout_seconds,
            headers={"Authorization": f"Bearer {self._config.token}"},
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def dispatch_once(self) -> int:
        """One pass; returns how many tests ALTS accepted."""
        claimed = await in_transaction(self._sessions, self._claim)
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._send(c) for c in claimed))
        for item, outcome in zip(claimed, outcomes, strict=True):
            await in_transaction(self._sessions, self._record, item, outcome)
        return sum(1 for outcome in outcomes if outcome.reply is not None)

    async def _claim(self, session: AsyncSession) -> list[Claimed]:
        await session.execute(select(func.pg_advisory_xact_lock(DISPATCH_LOCK)))
        now = utcnow()
        # Two counts, each on its partial index (an OR of both would scan the table).
        sent = select(func.count()).where(TestTask.status == TestTaskStatus.STARTED)
        sending = select(func.count()).where(
            TestTask.status == TestTaskStatus.CREATED, TestTask.claimed_until > now
        )
        busy = await session.scalar(select(sent.scalar_subquery() + sending.scalar_subquery()))
        free = self._config.max_in_flight - (busy or 0)
        if free <= 0:
            return []
        due = (
            select(TestTask.id)
            .where(
                TestTask.status == TestTaskStatus.CREATED,
                or_(TestTask.claimed_until.is_(None), TestTask.claimed_until <= now),
                or_(TestTask.next_attempt_at.is_(None), TestTask.next_attempt_at <= now),
            )
            .order_by(TestTask.id)
            .limit(free)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        lease = timedelta(seconds=self._config.timeout_seconds + CLAIM_MARGIN_SECONDS)
        rows = await session.execute(
            update(TestTask)
            .where(TestTask.id.in_(due))
            .values(claimed_until=now + lease, dispatch_attempts=TestTask.dispatch_attempts + 1)
            .returning(TestTask.id, TestTask.schedule_body, TestTask.dispatch_attempts)
        )
        return [Claimed(id_, body or {}, attempt) for id_, body, attempt in rows]

    async def _send(self, item: Claimed) -> Outcome:
        assert self._client is not None, "Dispatcher.start() was not called"
        try:
            answer = await self._client.post("/tasks/schedule", json=item.body)
        except httpx.HTTPError as exc:
            return Outcome(error=f"ALTS is unreachable: {_describe(exc)}")
        reply = _json_object(answer)
        if answer.is_success:
            return Outcome(reply=reply)
        detail = reply.get("error_description") or answer.text[:ERROR_TEXT_MAX]
        message = f"ALTS answered {answer.status_code}: {detail}"
        return Outcome(error=message, final=400 <= answer.status_code < 500)

    async def _record(self, session: AsyncSession, item: Claimed, outcome: Outcome) -> None:
        mine = (TestTask.id == item.id) & (TestTask.status == TestTaskStatus.CREATED)
        if outcome.reply is not None:
            log.info("test task %s sent to ALTS: %s", item.id, outcome.reply)
            await session.execute(
                update(TestTask)
                .where(TestTask.id == item.id)
                .values(
                    alts_reply=outcome.reply,
                    claimed_until=None,
                    error=None,
                    dispatched_at=utcnow(),
                    # A result may have arrived before this commit: it stays as it is.
                    status=case(
                        (TestTask.status == TestTaskStatus.CREATED, TestTaskStatus.STARTED),
                        else_=TestTask.status,
                    ),
                )
            )
        elif outcome.final:
            log.warning("test task %s refused: %s", item.id, outcome.error)
            refused = await session.execute(
                update(TestTask)
                .where(mine)
                .values(
                    status=TestTaskStatus.FAILED,
                    finished_at=utcnow(),
                    claimed_until=None,
                    error=outcome.error,
                )
                .returning(TestTask.build_task_id, TestTask.revision, TestTask.env_arch)
            )
            row = refused.one_or_none()
            if row is not None:
                await _announce_failure(session, item.id, *row)
        else:
            delay = retry_delay(
                item.attempt, self._config.retry_base_seconds, self._config.retry_max_seconds
            )
            log.warning(
                "test task %s (attempt %d): %s; next try in %.0f s",
                item.id,
                item.attempt,
                outcome.error,
                delay,
            )
            await session.execute(
                update(TestTask)
                .where(mine)
                .values(
                    claimed_until=None,
                    next_attempt_at=utcnow() + timedelta(seconds=delay),
                    error=f"{outcome.error} (attempt {item.attempt}; retried with backoff)",
                )
            )


async def _announce_failure(
    session: AsyncSession, test_task_id: int, build_task_id: int, revision: int, arch: str
) -> None:
    build_id = await session.scalar(select(BuildTask.build_id).where(BuildTask.id == build_task_id))
    await add_event(
        session,
        TestTaskFinished(
            test_task_id=test_task_id,
            build_id=build_id or 0,
            build_task_id=build_task_id,
            revision=revision,
            arch=arch,
            status=TestTaskStatus.FAILED,
        ),
    )


def _describe(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_MAX] if str(exc) else type(exc).__name__


def _json_object(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"reply": body}
