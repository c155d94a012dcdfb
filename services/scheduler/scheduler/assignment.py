"""Handing the oldest eligible task to a node: one atomic claim, then the Task it builds."""

from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from scheduler import mock_options
from shared.contracts.build_node import (
    BuildTaskAssigned,
    Task,
    TaskCreatedBy,
    TaskPlatform,
    TaskRef,
    TaskRepository,
)
from shared.db.models import Build, BuildTask, Platform, Repository
from shared.messaging.outbox import add_event

# Runnable idle tasks only (build ready, nothing left to wait for), oldest first, an arch
# the node builds. SKIP LOCKED lets concurrent claims (any number of replicas) pass each other.
CLAIM_NEXT_TASK = text(
    """
    UPDATE build_tasks AS t
    SET status = 1,
        attempt = t.attempt + 1,
        ts = now(),
        lease_expires_at = now() + make_interval(secs => :lease_seconds),
        node_id = :node_id
    WHERE t.id = (
        SELECT id
        FROM build_tasks
        WHERE status = 0 AND runnable AND arch = ANY(:arches)
        ORDER BY id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING t.id
    """
)


@dataclass(frozen=True)
class Claim:
    arches: list[str]
    node_id: str | None
    lease_seconds: int


async def assign_next_task(session: AsyncSession, claim: Claim) -> Task | None:
    task_id = await session.scalar(
        CLAIM_NEXT_TASK,
        {"arches": claim.arches, "node_id": claim.node_id, "lease_seconds": claim.lease_seconds},
    )
    if task_id is None:
        return None
    task = await _load(session, task_id)
    await add_event(
        session,
        BuildTaskAssigned(
            task_id=task.id,
            build_id=task.build_id,
            attempt=task.attempt,
            arch=task.arch,
            node_id=claim.node_id,
        ),
    )
    return describe(task)


async def _load(session: AsyncSession, task_id: int) -> BuildTask:
    task = await session.scalar(
        select(BuildTask)
        .where(BuildTask.id == task_id)
        .options(
            selectinload(BuildTask.ref),
            selectinload(BuildTask.platform).selectinload(Platform.repos),
            selectinload(BuildTask.build).selectinload(Build.user),
            selectinload(BuildTask.build).selectinload(Build.repos),
            selectinload(BuildTask.build)
            .selectinload(Build.linked_builds)
            .selectinload(Build.repos),
        )
        .execution_options(populate_existing=True)
    )
    assert task is not None
    return task


def describe(task: BuildTask) -> Task:
    """The Task as albs-node reads it; every field present and typed."""
    build = task.build
    repos = [
        *task.platform.repos,
        *build.repos,
        *(repo for linked in build.linked_builds for repo in linked.repos),
    ]
    return Task(
        id=task.id,
        arch=task.arch,
        ref=TaskRef(url=task.ref.url, git_ref=task.ref.git_ref),
        platform=TaskPlatform(
            name=task.platform.name,
            type="deb" if task.platform.type == "deb" else "rpm",
            data=mock_options.merge(task.platform.data, build.mock_options),
        ),
        created_by=TaskCreatedBy(name=build.user.username, email=build.user.email),
        repositories=[
            TaskRepository(name=r.name, url=r.url) for r in repos if _serves(r, task.arch)
        ],
        linked_builds=[linked.id for linked in build.linked_builds],
    )


def _serves(repo: Repository, arch: str) -> bool:
    return repo.arch == arch and repo.type != "build_log"
