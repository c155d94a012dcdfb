"""The Pulp file repository of each revision of a build task's tests, and ALTS's logs in it.

`test_logs-btid-{build_task_id}-tr-{revision}`, served under `test_logs/<name>/` (the
frontend reads the logs there, CLIENTS §5.2). It is linked to the build like its other
repositories, so deleting the build deletes it too (REFERENCE §11.22). Pulp work comes
first and is idempotent by name; rows follow in one transaction with the inbox row.
"""

import logging

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from artifacts.context import Context
from artifacts.pulp import RepoKind
from artifacts.store import build_exists, link_repository, seen_before
from shared.contracts.test_tasks import TestTaskFinished, TestTasksCreated
from shared.db.models import TestTask, TestTaskArtifact
from shared.db.session import unit_of_work
from shared.messaging.inbox import first_delivery, handle_once

log = logging.getLogger(__name__)

TEST_LOG_REPO = RepoKind("file/file", "test_logs")
TEST_LOG_TYPE = "test_log"


def alts_log_repo_name(build_task_id: int, revision: int) -> str:
    return f"test_logs-btid-{build_task_id}-tr-{revision}"


async def prepare_test_log_repository(
    ctx: Context, message_id: str | None, event: TestTasksCreated
) -> None:
    name = alts_log_repo_name(event.build_task_id, event.revision)
    async with ctx.locks.hold(("test-logs", name)):
        if await seen_before(ctx.sessions, ctx.consumer, message_id):
            return
        # Nobody reads it before ALTS's first logs: autopublish publishes that version, and
        # every tested package no longer costs an empty publication (a Pulp task).
        repo = await ctx.pulp.ensure_repository(TEST_LOG_REPO, name, publish=False)
        async with unit_of_work(ctx.sessions) as session:
            if not await first_delivery(session, ctx.consumer, message_id):
                return
            if not await build_exists(session, event.build_id, lock=True):
                kept = False
            else:
                kept = True
                repository_id = await link_repository(
                    session, event.build_id, repo, arch=event.arch, type_=TEST_LOG_TYPE, debug=False
                )
                await session.execute(
                    update(TestTask)
                    .where(TestTask.id.in_(event.test_task_ids))
                    .values(repository_id=repository_id)
                )
        if not kept:
            log.info("build %s is gone; removing test log repository %s", event.build_id, name)
            await ctx.pulp.delete_repository(repo.href)


async def file_test_logs(ctx: Context, message_id: str | None, event: TestTaskFinished) -> None:
    """Each log ALTS uploaded becomes file content in the revision's repository; a failure
    raises, so the event comes again (and is dead-lettered if it keeps failing)."""
    if not event.logs:
        await handle_once(ctx.sessions, ctx.consumer, message_id, _nothing)
        return
    name = alts_log_repo_name(event.build_task_id, event.revision)
    async with ctx.locks.hold(("test-logs", name)):
        if await seen_before(ctx.sessions, ctx.consumer, message_id):
            return
        if not await _test_exists(ctx, event.test_task_id):  # its build was deleted
            await handle_once(ctx.sessions, ctx.consumer, message_id, _nothing)
            return
        repo = await ctx.pulp.ensure_repository(TEST_LOG_REPO, name, publish=False)
        units = [await ctx.pulp.ensure_file(entry.href, entry.name) for entry in event.logs]
        await ctx.pulp.add_content(repo.href, units)
        async with unit_of_work(ctx.sessions) as session:
            if not await first_delivery(session, ctx.consumer, message_id):
                return
            await _record_logs(session, event, units)


async def _test_exists(ctx: Context, test_task_id: int) -> bool:
    async with ctx.sessions() as session:
        found = await session.scalar(select(TestTask.id).where(TestTask.id == test_task_id))
    return found is not None


async def _record_logs(session: AsyncSession, event: TestTaskFinished, units: list[str]) -> None:
    exists = await session.scalar(
        select(TestTask.id).where(TestTask.id == event.test_task_id).with_for_update()
    )
    if exists is None:
        return
    await session.execute(
        insert(TestTaskArtifact),
        [
            {"test_task_id": event.test_task_id, "name": entry.name, "href": href}
            for entry, href in zip(event.logs, units, strict=True)
        ],
    )


async def _nothing(session: AsyncSession) -> None:
    """The event needs no effect beyond its inbox row."""
