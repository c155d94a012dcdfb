"""Sign keys and sign tasks: the scheduler's side (loads, asks signing_rules, saves)."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler import signing_rules as rules
from shared.contracts.messages import Actor
from shared.contracts.signing import (
    CompleteReply,
    FrozenPackage,
    SignedPackage,
    SignKeyCreate,
    SignKeyOut,
    SignKeyUpdate,
    SignTaskComplete,
    SignTaskCompleted,
    SignTaskCreate,
    SignTaskCreated,
    SignTaskFailed,
    SignTaskOut,
    SignTaskPackagesReplaced,
    SignTaskSigned,
    keyid_matches,
)
from shared.db.models import (
    BinaryRpm,
    Build,
    BuildArtifact,
    BuildTask,
    SignKey,
    SignTask,
    SignTaskStatus,
    SourceRpm,
)
from shared.db.models.signing import IN_FLIGHT
from shared.db.queries.signing import key_out, task_out
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.messaging.outbox import add_event


def _check_key(keyid: str, fingerprint: str) -> None:
    if not keyid_matches(keyid, fingerprint):
        raise Invalid(f"keyid {keyid} is not the last 16 digits of fingerprint {fingerprint}.")


async def _saved(session: AsyncSession, key: SignKey) -> SignKey:
    """Flush in a savepoint: a concurrent twin hitting the unique index is a 409, not a 500."""
    try:
        async with session.begin_nested():
            session.add(key)
            await session.flush()
    except IntegrityError:
        raise Conflict(f"A sign key with keyid {key.keyid} or this fingerprint exists.") from None
    await session.refresh(key)
    return key


async def _refuse_duplicate(
    session: AsyncSession, keyid: str, fingerprint: str, other_than: int | None = None
) -> None:
    clash = (SignKey.keyid == keyid) | (SignKey.fingerprint == fingerprint)
    if other_than is not None:
        clash = clash & (SignKey.id != other_than)
    if await session.scalar(select(exists().where(clash))):
        raise Conflict(f"A sign key with keyid {keyid} or fingerprint {fingerprint} exists.")


async def create_key(session: AsyncSession, actor: Actor, body: SignKeyCreate) -> SignKeyOut:
    _require_admin(actor)
    _check_key(body.keyid, body.fingerprint)
    await _refuse_duplicate(session, body.keyid, body.fingerprint)
    return key_out(await _saved(session, SignKey(**body.model_dump())))


async def update_key(
    session: AsyncSession, actor: Actor, key_id: int, changes: SignKeyUpdate
) -> SignKeyOut:
    _require_admin(actor)
    key = await session.scalar(select(SignKey).where(SignKey.id == key_id).with_for_update())
    if key is None:
        raise NotFound(f"Sign key {key_id} is not found")
    for field, value in changes.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(key, field, value)
    _check_key(key.keyid, key.fingerprint)
    await _refuse_duplicate(session, key.keyid, key.fingerprint, other_than=key.id)
    return key_out(await _saved(session, key))


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("Only administrators manage sign keys.")


def current_artifacts() -> Any:
    """Build artifact ids of the current attempt of each task (earlier attempts' rows stay)."""
    return select(BuildArtifact.id).join(
        BuildTask,
        (BuildTask.id == BuildArtifact.build_task_id)
        & (BuildTask.attempt == BuildArtifact.attempt),
    )


async def _build_for_signing(session: AsyncSession, build: Build) -> rules.BuildForSigning:
    in_flight = await session.scalar(
        select(exists().where(SignTask.build_id == build.id, SignTask.status.in_(IN_FLIGHT)))
    )
    current = current_artifacts().where(BuildTask.build_id == build.id)
    sources = await session.scalar(
        select(func.count()).where(
            SourceRpm.build_id == build.id, SourceRpm.artifact_id.in_(current)
        )
    )
    binaries = await session.scalar(
        select(func.count()).where(
            BinaryRpm.build_id == build.id, BinaryRpm.artifact_id.in_(current)
        )
    )
    return rules.BuildForSigning(
        finished=build.completed_at is not None,
        signed=build.signed,
        has_task_in_flight=bool(in_flight),
        source_rpms=sources or 0,
        binary_rpms=binaries or 0,
    )


async def create_task(session: AsyncSession, actor: Actor, body: SignTaskCreate) -> SignTaskOut:
    build = await session.scalar(select(Build).where(Build.id == body.build_id).with_for_update())
    if build is None:
        raise NotFound(f"Build with build_id={body.build_id} is not found")
    if build.user_id != actor.user_id and not actor.is_admin:
        raise Forbidden(f"Only the owner of build {build.id} or an administrator may sign it.")
    key = await session.get(SignKey, body.sign_key_id)
    if key is None:
        raise NotFound(f"Sign key {body.sign_key_id} is not found")
    refusal = rules.refusal_to_sign(build.id, await _build_for_signing(session, build))
    if refusal is not None:
        raise Conflict(refusal)
    task = SignTask(build_id=build.id, sign_key_id=key.id, status=SignTaskStatus.IDLE)
    session.add(task)
    await session.flush()
    await session.refresh(task)
    await add_event(
        session, SignTaskCreated(task_id=task.id, build_id=build.id, sign_key_id=key.id)
    )
    return task_out(task, key)


async def complete_task(
    session: AsyncSession, actor: Actor, task_id: int, report: SignTaskComplete
) -> CompleteReply:
    task = await session.scalar(select(SignTask).where(SignTask.id == task_id).with_for_update())
    if task is None:
        raise NotFound(f"Sign task {task_id} is not found")
    packages = [FrozenPackage.model_validate(p) for p in task.packages or []]
    verdict = rules.judge_completion(_for_completion(task, packages), actor.node_id, report)
    now = datetime.now(UTC)
    if verdict == rules.Verdict.FAILED:
        error = report.error_message or "The sign node reported a failure without a message."
        _finish(task, SignTaskStatus.FAILED, now, error)
        task.signed_hrefs, task.reported_at = {}, now
        await add_event(session, _failed(task, error))
    elif verdict == rules.Verdict.SUCCEEDED:
        hrefs = rules.signed_hrefs(report)
        task.signed_hrefs = {str(k): v for k, v in hrefs.items()}
        task.reported_at, task.lease_expires_at = now, None
        key = await session.get(SignKey, task.sign_key_id)
        assert key is not None  # sign_tasks.sign_key_id is a foreign key
        await add_event(session, _signed(task, key, packages, hrefs))
    return CompleteReply(success=True)


async def cancel_task(session: AsyncSession, actor: Actor, task_id: int) -> SignTaskOut:
    """The build's owner or an administrator ends a waiting or claimed task: it fails, and
    the build may be signed again (Re-sign)."""
    task = await session.scalar(select(SignTask).where(SignTask.id == task_id).with_for_update())
    if task is None:
        raise NotFound(f"Sign task {task_id} is not found")
    owner = await session.scalar(select(Build.user_id).where(Build.id == task.build_id))
    if owner != actor.user_id and not actor.is_admin:
        raise Forbidden(
            f"Only the owner of build {task.build_id} or an administrator may cancel its signing."
        )
    refusal = rules.refusal_to_cancel(
        rules.TaskForCancel(task.id, task.status, report_taken=task.reported_at is not None)
    )
    if refusal is not None:
        raise Conflict(refusal)
    message = rules.cancel_message(actor.name)
    _finish(task, SignTaskStatus.FAILED, datetime.now(UTC), message)
    task.canceled_by = actor.name
    await add_event(session, _failed(task, message))
    key = await session.get(SignKey, task.sign_key_id)
    assert key is not None  # sign_tasks.sign_key_id is a foreign key
    return task_out(task, key)


def _for_completion(task: SignTask, packages: list[FrozenPackage]) -> rules.TaskForCompletion:
    accepted = (
        None
        if task.reported_at is None or task.signed_hrefs is None
        else {int(k): v for k, v in task.signed_hrefs.items()}
    )
    return rules.TaskForCompletion(
        task_id=task.id,
        build_id=task.build_id,
        status=task.status,
        node_id=task.node_id,
        package_ids=frozenset(p.id for p in packages),
        accepted=accepted,
        canceled_by=task.canceled_by,
    )


def _signed(
    task: SignTask, key: SignKey, packages: list[FrozenPackage], hrefs: dict[int, str]
) -> SignTaskSigned:
    return SignTaskSigned(
        keyid=key.keyid,
        fingerprint=key.fingerprint,
        task_id=task.id,
        build_id=task.build_id,
        attempt=task.attempt,
        packages=[
            SignedPackage(
                artifact_ids=p.artifact_ids,
                name=p.name,
                repository_id=p.repository_id,
                artifact_href=hrefs[p.id],
            )
            for p in packages
        ],
    )


def _failed(task: SignTask, error: str) -> SignTaskFailed:
    return SignTaskFailed(
        task_id=task.id, build_id=task.build_id, attempt=task.attempt, error=error[:2000]
    )


def _finish(task: SignTask, status: SignTaskStatus, now: datetime, error: str | None) -> None:
    task.status = status
    task.finished_at = now
    task.lease_expires_at = None
    task.error_message = error


async def record_replaced(session: AsyncSession, event: SignTaskPackagesReplaced) -> None:
    """The artifacts service's answer to a success report: the task's end."""
    task = await session.scalar(
        select(SignTask).where(SignTask.id == event.task_id).with_for_update()
    )
    if task is None or task.status != SignTaskStatus.IN_PROGRESS or task.attempt != event.attempt:
        return
    now = datetime.now(UTC)
    if event.error is not None:
        _finish(task, SignTaskStatus.FAILED, now, event.error)
        await add_event(session, _failed(task, event.error))
        return
    _finish(task, SignTaskStatus.COMPLETED, now, None)
    await session.execute(update(Build).where(Build.id == task.build_id).values(signed=True))
    await add_event(
        session,
        SignTaskCompleted(task_id=task.id, build_id=task.build_id, attempt=task.attempt),
    )
