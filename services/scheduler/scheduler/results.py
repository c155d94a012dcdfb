"""A node's build_done report: first report wins, repeats are harmless, contradictions are 409.

Rule for late reports (docs/decisions/0002-leases.md, 0011-request-path.md): only the node
that holds (or last held) the task may report it; any other node gets 409, which albs-node
reads as "already done", also after the task finished. The holder's report is accepted
while the task is started or waiting to be retried; once it finished, only the same
outcome is 200.
"""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from shared.contracts.build_node import (
    BuildDone,
    BuildDoneReply,
    BuildTaskFinished,
    ReportedArtifact,
)
from shared.contracts.messages import Actor
from shared.db.base import utcnow
from shared.db.models import BuildTask, BuildTaskStatus
from shared.db.models.builds import FINISHED_STATUSES
from shared.errors import Conflict, NotFound
from shared.messaging.outbox import add_event

STATUS_OF_REPORT = {
    "done": BuildTaskStatus.COMPLETED,
    "failed": BuildTaskStatus.FAILED,
    "excluded": BuildTaskStatus.EXCLUDED,
}


async def record_build_done(
    session: AsyncSession, actor: Actor, report: BuildDone
) -> BuildDoneReply:
    task = await session.scalar(
        select(BuildTask)
        .where(BuildTask.id == report.task_id)
        .options(selectinload(BuildTask.platform))
        .with_for_update()
    )
    if task is None:
        raise NotFound(f"Build task {report.task_id} is not found")
    outcome = STATUS_OF_REPORT[report.status]
    _check_reporter(task, actor)
    if task.status in FINISHED_STATUSES:
        if task.status == outcome:
            return BuildDoneReply(ok=True)
        raise Conflict(
            f"Build task {task.id} already finished as "
            f"{BuildTaskStatus(task.status).name.lower()}; this report says {report.status}"
        )
    task.status = outcome
    task.finished_at = utcnow()
    task.lease_expires_at = None
    await add_event(
        session,
        BuildTaskFinished(
            task_id=task.id,
            build_id=task.build_id,
            attempt=task.attempt,
            status=report.status,
            platform=task.platform.name,
            arch=task.arch,
            artifacts=_unique_artifacts(report),
        ),
    )
    return BuildDoneReply(ok=True)


def _check_reporter(task: BuildTask, actor: Actor) -> None:
    if task.attempt == 0:
        raise Conflict(f"Build task {task.id} has not been given to any node yet")
    if task.node_id is not None and actor.node_id != task.node_id:
        raise Conflict(f"Build task {task.id} is held by another node, not {actor.node_id}")


def _unique_artifacts(report: BuildDone) -> list[ReportedArtifact]:
    """Drop exact repeats; the same Pulp artifact under two names is kept (identical files)."""
    seen: dict[tuple[str, str, str], ReportedArtifact] = {}
    for a in report.artifacts:
        seen.setdefault(
            (a.name, a.type, a.href),
            ReportedArtifact(name=a.name, type=a.type, artifact_href=a.href),
        )
    return list(seen.values())
