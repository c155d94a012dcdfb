"""Swapping signed packages into a build's repositories (SIGNING.md §5.8-5.10).

Each signed artifact becomes RPM content (found by pkgId, else made); then one `modify` per
repository removes the unsigned units and adds the signed ones, so readers see either the
old set or the new one. The rows and `sign_task.packages_replaced` follow in one transaction;
a swap that fails still answers, with the reason in `error`.
"""

import logging
from collections import defaultdict

from sqlalchemy import select, update

from artifacts.context import Context
from artifacts.pulp import PulpError
from artifacts.signatures import unsigned_files
from artifacts.store import seen_before
from shared.contracts.signing import SignTaskPackagesReplaced, SignTaskSigned
from shared.db.models import BuildArtifact, Repository
from shared.db.session import unit_of_work
from shared.messaging.inbox import first_delivery
from shared.messaging.outbox import add_event

log = logging.getLogger(__name__)


class SwapError(Exception):
    pass


async def replace_signed_packages(
    ctx: Context, message_id: str | None, event: SignTaskSigned
) -> None:
    async with ctx.locks.hold(("sign", event.task_id, event.attempt)):
        if await seen_before(ctx.sessions, ctx.consumer, message_id):
            return
        error: str | None = None
        new_hrefs: dict[int, str] = {}
        try:
            new_hrefs = await _swap(ctx, event)
        except (PulpError, SwapError) as exc:
            error = f"The signed packages could not be put in place: {exc}"
            log.warning("sign task %s attempt %s: %s", event.task_id, event.attempt, error)
        async with unit_of_work(ctx.sessions) as session:
            if not await first_delivery(session, ctx.consumer, message_id):
                return
            for artifact_id, href in new_hrefs.items():
                await session.execute(
                    update(BuildArtifact).where(BuildArtifact.id == artifact_id).values(href=href)
                )
            await add_event(
                session,
                SignTaskPackagesReplaced(
                    task_id=event.task_id,
                    build_id=event.build_id,
                    attempt=event.attempt,
                    error=error,
                ),
            )


async def _swap(ctx: Context, event: SignTaskSigned) -> dict[int, str]:
    """Pulp's part; returns build artifact id -> its signed content href."""
    old, repos = await _current(ctx, event)
    names = {p.artifact_href: p.name for p in event.packages}
    checksums = await ctx.pulp.artifact_checksums(names)
    known = await ctx.pulp.packages_by_checksum(list(checksums.values()))
    content: dict[str, str] = {}
    for href, name in names.items():
        found = known.get(checksums[href])
        content[href] = found if found is not None else await ctx.pulp.ensure_package(href, name)
    await _check_signatures(ctx, event, {content[href]: name for href, name in names.items()})
    adding: dict[str, list[str]] = defaultdict(list)
    removing: dict[str, list[str]] = defaultdict(list)
    new_hrefs: dict[int, str] = {}
    for package in event.packages:
        repo_href = repos[package.repository_id]
        adding[repo_href].append(content[package.artifact_href])
        for artifact_id in package.artifact_ids:
            unsigned = old.get(artifact_id)
            if unsigned is not None:
                removing[repo_href].append(unsigned)
            new_hrefs[artifact_id] = content[package.artifact_href]
    for repo_href, units in adding.items():
        await ctx.pulp.replace_content(repo_href, units, removing[repo_href])
    return new_hrefs


async def _check_signatures(ctx: Context, event: SignTaskSigned, names: dict[str, str]) -> None:
    """Nothing is swapped unless every file carries a signature by the task's key."""
    if not event.keyid and not event.fingerprint:
        log.warning("sign task %s: an event without its key; signatures not checked", event.task_id)
        return
    found = await ctx.pulp.signing_keys(list(names))
    unsigned = unsigned_files(found, names, event.keyid, event.fingerprint)
    if unsigned:
        raise SwapError(
            f"{len(unsigned)} file(s) carry no signature by key {event.keyid}: "
            + ", ".join(unsigned[:10])
        )


async def _current(
    ctx: Context, event: SignTaskSigned
) -> tuple[dict[int, str | None], dict[int, str]]:
    artifact_ids = [a for p in event.packages for a in p.artifact_ids]
    repository_ids = {p.repository_id for p in event.packages}
    async with ctx.sessions() as session:
        rows = await session.execute(
            select(BuildArtifact.id, BuildArtifact.href).where(BuildArtifact.id.in_(artifact_ids))
        )
        old: dict[int, str | None] = {row[0]: row[1] for row in rows.all()}
        found = await session.execute(
            select(Repository.id, Repository.pulp_href).where(Repository.id.in_(repository_ids))
        )
        repos = {repo_id: href for repo_id, href in found if href}
    missing = repository_ids - set(repos)
    if missing:
        raise SwapError(f"build {event.build_id} no longer has repositories {sorted(missing)}")
    return old, repos
