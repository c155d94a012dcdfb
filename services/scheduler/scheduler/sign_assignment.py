"""Handing the oldest waiting sign task for the offered keys to a Sign Node.

The claim is one statement (SKIP LOCKED, so replicas and nodes pass each other) as for build
tasks (decision 0008); it runs in a transaction with the freezing of the task's package list,
so a task is never left in progress after an answer of `{}` or an error (SIGNING.md §5.1).
Sign Nodes are few and poll every 30 s: SQLAlchemy's pool serves them, no claim pool needed.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler import signing_rules as rules
from scheduler.signing import current_artifacts
from shared.contracts.signing import (
    AvailableSignTask,
    ClaimedSignTask,
    FrozenPackage,
    SignTaskAssigned,
    SignTaskFailed,
)
from shared.db.models import (
    BuildArtifact,
    BuildTask,
    Platform,
    Repository,
    SignTask,
    SignTaskStatus,
    build_repo,
)
from shared.messaging.outbox import add_event

CLAIM_SIGN_TASK = text(
    """
    WITH picked AS (
        SELECT t.id FROM sign_tasks AS t JOIN sign_keys AS k ON k.id = t.sign_key_id
        WHERE t.status = 1 AND k.keyid = ANY(CAST(:key_ids AS text[]))
        ORDER BY t.id
        LIMIT 1
        FOR UPDATE OF t SKIP LOCKED
    )
    UPDATE sign_tasks AS t
    SET status = 2,
        attempt = t.attempt + 1,
        node_id = :node_id,
        claimed_at = now(),
        lease_expires_at = now() + make_interval(secs => :lease_seconds)
    FROM picked, sign_keys AS k
    WHERE t.id = picked.id AND k.id = t.sign_key_id
    RETURNING t.id, t.build_id, t.attempt, k.keyid
    """
)

# The node polls only between tasks, so this mostly renews nothing; a node that runs several
# signers under one token keeps the others' tasks alive with each poll.
RENEW_LEASES = text(
    """
    UPDATE sign_tasks
    SET lease_expires_at = now() + make_interval(secs => :lease_seconds)
    WHERE status = 2 AND node_id = :node_id AND lease_expires_at IS NOT NULL
    """
)

# A task found with nothing to sign fails visibly; a few such in a row end one poll.
MAX_EMPTY_CLAIMS = 5


@dataclass(frozen=True)
class SignClaim:
    key_ids: list[str]
    node_id: str
    lease_seconds: int


async def claim_sign_task(session: AsyncSession, claim: SignClaim) -> ClaimedSignTask:
    params = {"node_id": claim.node_id, "lease_seconds": float(claim.lease_seconds)}
    await session.execute(RENEW_LEASES, params)
    if not claim.key_ids:
        return ClaimedSignTask(task=None)
    for _ in range(MAX_EMPTY_CLAIMS):
        row = (
            await session.execute(CLAIM_SIGN_TASK, {**params, "key_ids": claim.key_ids})
        ).one_or_none()
        if row is None:
            return ClaimedSignTask(task=None)
        task_id, build_id, attempt, keyid = row
        task = await session.get_one(SignTask, task_id)
        if task.packages is None:  # frozen at the first claim; a requeued task keeps its list
            task.packages = [p.model_dump() for p in await packages_of(session, build_id)]
        packages = [FrozenPackage.model_validate(p) for p in task.packages]
        if packages:
            await add_event(
                session,
                SignTaskAssigned(
                    task_id=task_id, build_id=build_id, attempt=attempt, node_id=claim.node_id
                ),
            )
            return ClaimedSignTask(
                task=AvailableSignTask(
                    id=task_id,
                    build_id=build_id,
                    keyid=keyid,
                    packages=[p.for_node() for p in packages],
                )
            )
        await _fail_empty(session, task)
    return ClaimedSignTask(task=None)


async def _fail_empty(session: AsyncSession, task: SignTask) -> None:
    error = f"Build {task.build_id} has no RPMs in its repositories to sign."
    task.status = SignTaskStatus.FAILED
    task.error_message = error
    task.lease_expires_at = None
    task.finished_at = datetime.now(UTC)
    await add_event(
        session,
        SignTaskFailed(task_id=task.id, build_id=task.build_id, attempt=task.attempt, error=error),
    )


async def packages_of(session: AsyncSession, build_id: int) -> list[FrozenPackage]:
    rpms = (
        await session.execute(
            select(BuildArtifact.id, BuildArtifact.name, Platform.name, BuildTask.arch)
            .join(BuildTask, BuildTask.id == BuildArtifact.build_task_id)
            .join(Platform, Platform.id == BuildTask.platform_id)
            .where(
                BuildArtifact.id.in_(current_artifacts().where(BuildTask.build_id == build_id)),
                BuildArtifact.type == "rpm",
                BuildArtifact.href.is_not(None),
            )
        )
    ).all()
    repos = (
        await session.execute(
            select(Repository.id, Repository.name, Repository.url)
            .join(build_repo, build_repo.c.repository_id == Repository.id)
            .where(build_repo.c.build_id == build_id, Repository.type == "rpm")
        )
    ).all()
    return rules.plan_packages(
        build_id,
        [rules.CurrentRpm(*row) for row in rpms],
        [rules.BuildRepo(*row) for row in repos],
    )
