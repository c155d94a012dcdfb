"""A warm pool of empty Pulp repositories, so a build or a task does not wait for Pulp's
task workers (docs/decisions/0009, third pass).

A background loop keeps `target` ready entries of each kind: a repository with its
distribution (and an empty publication for the repositories nodes read before their first
package), under an opaque pool name. A build claims entries in one statement per
repository (`FOR UPDATE SKIP LOCKED`: exactly once across replicas), renames each to the
repository's wire name and base path (updates Pulp runs in its API process, no worker
task), and deletes the row. An empty pool, a disabled one or an entry Pulp lost: the
caller makes the repository as before. No database session is held across a Pulp call.
"""

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from artifacts.pulp import LOG_REPO, RPM_REPO, PulpClient, PulpError, PulpRepo, RepoKind
from shared.db.models import PulpPoolEntry
from shared.db.session import SessionFactory, unit_of_work
from shared.periodic import PeriodicJob

log = logging.getLogger(__name__)

POOL_PREFIX = "albs-pool-"
# Serializes the refill passes of all replicas (pg_advisory_xact_lock, one short transaction).
POOL_LOCK = (0x41525446, 0x504F4F4C)
# An entry still without its Pulp repository after this long was abandoned by a replica that
# stopped (making one is bounded by the Pulp retry deadline and the task timeout).
STALE_MAKING = timedelta(minutes=30)
# A claim whose rename never finished (the claimer stopped and the event went elsewhere).
STALE_CLAIM = timedelta(hours=1)

REFILL_DELAY_SECONDS = 2.0


@dataclass(frozen=True)
class PoolKind:
    repo: RepoKind
    published: bool  # an empty publication, for a repository read before its first package

    @property
    def label(self) -> str:
        return "rpm" if self.repo is RPM_REPO else "file"


RPM_READ = PoolKind(RPM_REPO, published=True)  # a build's arch and debug repositories
RPM_SOURCE = PoolKind(RPM_REPO, published=False)  # a build's src repository
TASK_LOGS = PoolKind(LOG_REPO, published=False)  # a task's log repository
KINDS = (RPM_READ, RPM_SOURCE, TASK_LOGS)


@dataclass(frozen=True)
class Entry:
    id: int
    kind: PoolKind
    name: str
    repo_href: str | None


@dataclass(frozen=True)
class Plan:
    make: list[Entry]  # rows inserted, Pulp repositories to make
    remove: list[Entry]  # rows deleted, Pulp repositories to delete if still the pool's


def deficit(target: int, unclaimed: int) -> int:
    """How many entries to make (positive) or to trim (negative)."""
    return target - unclaimed


def pool_name() -> str:
    return f"{POOL_PREFIX}{uuid.uuid4().hex}"


def _kind_of(row: PulpPoolEntry) -> PoolKind:
    return next(k for k in KINDS if k.label == row.kind and k.published == row.published)


def _entry(row: PulpPoolEntry) -> Entry:
    return Entry(row.id, _kind_of(row), row.name, row.repo_href)


def _of_kind(kind: PoolKind) -> ColumnElement[bool]:
    return and_(PulpPoolEntry.kind == kind.label, PulpPoolEntry.published.is_(kind.published))


async def claim(session: AsyncSession, kind: PoolKind, name: str) -> Entry | None:
    """One ready entry for the repository `name`: the one an earlier try claimed for it, else
    the oldest free one. Skips rows another transaction is claiming."""
    mine = PulpPoolEntry.claimed_for == name
    pick = (
        select(PulpPoolEntry.id)
        .where(
            _of_kind(kind),
            PulpPoolEntry.repo_href.is_not(None),
            or_(PulpPoolEntry.claimed_for.is_(None), mine),
        )
        .order_by(mine.desc().nulls_last(), PulpPoolEntry.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    row = (
        await session.execute(
            update(PulpPoolEntry)
            .where(PulpPoolEntry.id == pick)
            .values(claimed_for=name, claimed_at=func.now())
            .returning(PulpPoolEntry)
        )
    ).scalar_one_or_none()
    return None if row is None else _entry(row)


async def plan_refill(session: AsyncSession, targets: dict[PoolKind, int]) -> Plan:
    """Under the pool's lock: insert the rows to make, delete (and return) the rows to trim
    and the stale ones, so two replicas never make or remove the same entry."""
    await session.execute(select(func.pg_advisory_xact_lock(*POOL_LOCK)))
    stale = (
        await session.scalars(
            delete(PulpPoolEntry)
            .where(
                or_(
                    and_(
                        PulpPoolEntry.repo_href.is_(None),
                        PulpPoolEntry.created_at < func.now() - STALE_MAKING,
                    ),
                    PulpPoolEntry.claimed_at < func.now() - STALE_CLAIM,
                )
            )
            .returning(PulpPoolEntry)
        )
    ).all()
    plan = Plan(make=[], remove=[_entry(row) for row in stale])
    for kind, target in targets.items():
        unclaimed = await session.scalar(
            select(func.count())
            .select_from(PulpPoolEntry)
            .where(_of_kind(kind), PulpPoolEntry.claimed_for.is_(None))
        )
        missing = deficit(target, int(unclaimed or 0))
        if missing > 0:
            plan.make.extend(await _insert(session, kind, missing))
        elif missing < 0:
            plan.remove.extend(await _trim(session, kind, -missing))
    return plan


async def _insert(session: AsyncSession, kind: PoolKind, count: int) -> list[Entry]:
    values = [{"kind": kind.label, "published": kind.published, "name": pool_name()}]
    values += [{**values[0], "name": pool_name()} for _ in range(count - 1)]
    rows = (await session.scalars(insert(PulpPoolEntry).returning(PulpPoolEntry), values)).all()
    return [_entry(row) for row in rows]


async def _trim(session: AsyncSession, kind: PoolKind, count: int) -> list[Entry]:
    """The newest ready entries beyond the target (entries still being made stay)."""
    ids = (
        select(PulpPoolEntry.id)
        .where(
            _of_kind(kind),
            PulpPoolEntry.repo_href.is_not(None),
            PulpPoolEntry.claimed_for.is_(None),
        )
        .order_by(PulpPoolEntry.id.desc())
        .limit(count)
        .with_for_update(skip_locked=True)
    )
    rows = (
        await session.scalars(
            delete(PulpPoolEntry).where(PulpPoolEntry.id.in_(ids)).returning(PulpPoolEntry)
        )
    ).all()
    return [_entry(row) for row in rows]


class WarmPool:
    def __init__(
        self,
        pulp: PulpClient,
        sessions: SessionFactory,
        targets: dict[PoolKind, int],
        *,
        fill_concurrency: int = 2,
        check_seconds: float = 30.0,
    ) -> None:
        self._pulp = pulp
        self._sessions = sessions
        self.targets = targets
        self._fill = asyncio.Semaphore(fill_concurrency)
        self._check_seconds = check_seconds
        self._job = PeriodicJob("pulp-pool", self._refill_when_quiet, check_seconds)
        # Claims in flight in this process: the refill makes no new entry meanwhile, so its
        # requests do not queue in front of a build's renames at Pulp's API processes.
        self._claims = 0
        self._no_claims = asyncio.Event()
        self._no_claims.set()
        self._last_claim = float("-inf")

    @property
    def enabled(self) -> bool:
        return any(self.targets.values())

    async def start(self) -> None:
        if self.enabled:
            self._job.start()

    async def stop(self) -> None:
        await self._job.stop()

    async def take(self, wanted: Sequence[tuple[PoolKind, str]]) -> dict[str, PulpRepo]:
        """name -> the pool's repository renamed to it, for each (kind, name) the pool had;
        the caller makes the others itself. One transaction claims them all."""
        wanted = [(kind, name) for kind, name in wanted if self.targets.get(kind)]
        if not wanted:
            return {}
        self._claims += 1
        self._no_claims.clear()
        self._last_claim = asyncio.get_running_loop().time()
        try:
            return await self._take(wanted)
        finally:
            self._claims -= 1
            if not self._claims:
                self._no_claims.set()

    async def _take(self, wanted: list[tuple[PoolKind, str]]) -> dict[str, PulpRepo]:
        async with unit_of_work(self._sessions) as session:
            claimed = {name: await claim(session, kind, name) for kind, name in wanted}
        self._job.wake.set()
        entries = {name: entry for name, entry in claimed.items() if entry is not None}
        if len(entries) < len(wanted):
            log.info("pulp pool: %d of %d entries wanted were ready", len(entries), len(wanted))
        adopted = await asyncio.gather(*(self._adopt(e, name) for name, e in entries.items()))
        if entries:
            await self._forget(list(entries.values()))
        lost = [e for e, repo in zip(entries.values(), adopted, strict=True) if repo is None]
        await asyncio.gather(*(self._remove(entry) for entry in lost))
        return {repo.name: repo for repo in adopted if repo is not None}

    async def _adopt(self, entry: Entry, name: str) -> PulpRepo | None:
        if entry.repo_href is None:
            return None
        try:
            return await self._pulp.adopt_repository(entry.kind.repo, entry.repo_href, name)
        except PulpError as exc:
            # Pulp lost it, or the name is taken (an earlier try made it the slow way).
            log.warning("pulp pool: entry %s not usable for %s: %s", entry.name, name, exc)
            return None

    async def refill(self) -> None:
        """One pass: remove what is stale or beyond the target, make what is missing."""
        async with unit_of_work(self._sessions) as session:
            plan = await plan_refill(session, self.targets)
        if plan.remove:
            await asyncio.gather(*(self._remove(entry) for entry in plan.remove))
        if plan.make:
            await asyncio.gather(*(self._make(entry) for entry in plan.make))

    async def drain(self) -> int:
        """Remove every unclaimed entry, ready or being made, from Pulp and the table (the
        pool of a stopped service, before the service or its Pulp is retired)."""
        async with unit_of_work(self._sessions) as session:
            await session.execute(select(func.pg_advisory_xact_lock(*POOL_LOCK)))
            rows = (
                await session.scalars(
                    delete(PulpPoolEntry)
                    .where(PulpPoolEntry.claimed_for.is_(None))
                    .returning(PulpPoolEntry)
                )
            ).all()
        await asyncio.gather(*(self._remove(_entry(row)) for row in rows))
        return len(rows)

    async def _refill_when_quiet(self) -> None:
        await self._quiet()
        await self.refill()

    async def _quiet(self) -> None:
        """Wait until no claim came for REFILL_DELAY_SECONDS (at most the check interval):
        during a burst of builds the refill's requests would queue in front of the burst's
        renames at Pulp's API processes; it catches up after the burst."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._check_seconds
        while (idle := loop.time() - self._last_claim) < REFILL_DELAY_SECONDS:
            if loop.time() >= deadline:
                return
            await asyncio.sleep(REFILL_DELAY_SECONDS - idle)

    async def _make(self, entry: Entry) -> None:
        async with self._fill:
            await self._no_claims.wait()
            try:
                repo = await self._pulp.ensure_repository(
                    entry.kind.repo, entry.name, publish=entry.kind.published
                )
            except PulpError as exc:
                log.warning("pulp pool: could not make %s: %s", entry.name, exc)
                await self._forget([entry])
                await self._remove(entry)
                return
        async with unit_of_work(self._sessions) as session:
            await session.execute(
                update(PulpPoolEntry)
                .where(PulpPoolEntry.id == entry.id)
                .values(repo_href=repo.href)
            )

    async def _remove(self, entry: Entry) -> None:
        """Delete the entry's Pulp repository unless it has a build's name by now."""
        try:
            if entry.repo_href is None:
                await self._pulp.delete_repository_named(entry.kind.repo, entry.name)
                return
            found = await self._pulp.get(entry.kind.repo.repositories, name=entry.name)
            if found.get("count"):
                await self._pulp.delete_repository(entry.repo_href)
        except PulpError as exc:
            log.error("pulp pool: could not remove %s from Pulp: %s", entry.name, exc)

    async def _forget(self, entries: Sequence[Entry]) -> None:
        async with unit_of_work(self._sessions) as session:
            await session.execute(
                delete(PulpPoolEntry).where(PulpPoolEntry.id.in_([e.id for e in entries]))
            )
