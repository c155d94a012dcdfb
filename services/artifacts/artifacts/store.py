"""The artifacts service's rows: repositories of builds, and inbox look-ups."""

import uuid

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from artifacts.pulp import PulpRepo
from shared.db.models import Build, InboxMessage, Repository, build_repo
from shared.db.session import SessionFactory

RPM_TYPE = "rpm"
LOG_TYPE = "build_log"


async def seen_before(sessions: SessionFactory, consumer: str, message_id: str | None) -> bool:
    """A cheap early look at the inbox, so a redelivery skips the Pulp work.

    The authoritative check is still `first_delivery` in the transaction that records effects.
    """
    if not message_id:
        return False
    async with sessions() as session:
        found = await session.scalar(
            select(
                exists().where(
                    InboxMessage.consumer == consumer,
                    InboxMessage.message_id == uuid.UUID(message_id),
                )
            )
        )
    return bool(found)


async def build_exists(session: AsyncSession, build_id: int, *, lock: bool = False) -> bool:
    """Whether the build is still there; `lock` keeps it from being deleted until commit."""
    query = select(Build.id).where(Build.id == build_id)
    if lock:
        query = query.with_for_update(key_share=True)
    return await session.scalar(query) is not None


async def link_repository(
    session: AsyncSession,
    build_id: int,
    repo: PulpRepo,
    *,
    arch: str,
    type_: str,
    debug: bool,
) -> int:
    """Insert or refresh the Repository row of a Pulp repository and link it to the build."""
    repository_id = await upsert_repository(session, repo, arch=arch, type_=type_, debug=debug)
    await session.execute(
        insert(build_repo)
        .values(build_id=build_id, repository_id=repository_id)
        .on_conflict_do_nothing()
    )
    return repository_id


async def upsert_repository(
    session: AsyncSession, repo: PulpRepo, *, arch: str, type_: str, debug: bool
) -> int:
    """Insert or refresh the Repository row of a Pulp repository; returns its id."""
    repository_id = await session.scalar(
        insert(Repository)
        .values(
            name=repo.name,
            arch=arch,
            type=type_,
            debug=debug,
            url=repo.base_url,
            pulp_href=repo.href,
        )
        .on_conflict_do_update(
            index_elements=[
                Repository.name,
                Repository.arch,
                Repository.type,
                Repository.debug,
            ],
            set_={"url": repo.base_url, "pulp_href": repo.href},
        )
        .returning(Repository.id)
    )
    if repository_id is None:
        raise RuntimeError(f"repository {repo.name} was neither inserted nor updated")
    return int(repository_id)


async def repository_href(
    session: AsyncSession, build_id: int, name: str, arch: str, *, debug: bool
) -> str | None:
    """The Pulp href of one RPM repository of the build, by its exact name."""
    href: str | None = await session.scalar(
        select(Repository.pulp_href)
        .join(build_repo, build_repo.c.repository_id == Repository.id)
        .where(
            build_repo.c.build_id == build_id,
            Repository.name == name,
            Repository.arch == arch,
            Repository.type == RPM_TYPE,
            Repository.debug.is_(debug),
        )
    )
    return href


async def repository_named(session: AsyncSession, name: str, type_: str) -> bool:
    """Whether a Repository row of that name and type exists (a task's log repository)."""
    found = await session.scalar(
        select(exists().where(Repository.name == name, Repository.type == type_))
    )
    return bool(found)
