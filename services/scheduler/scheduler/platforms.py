"""Creating and changing platforms; the scheduler owns them."""

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from scheduler.task_bodies import store_bodies
from shared.contracts.messages import Actor
from shared.contracts.platforms import PlatformCreate, PlatformModify, PlatformRepo, PlatformSummary
from shared.db.models import (
    BuildTask,
    BuildTaskStatus,
    Platform,
    Repository,
    platform_repository,
)
from shared.errors import Conflict, Invalid, NotFound

RepoKey = tuple[str, str, str]


def summary(platform: Platform) -> PlatformSummary:
    return PlatformSummary(id=platform.id, name=platform.name, arch_list=platform.arch_list)


async def create_platform(
    session: AsyncSession, actor: Actor, body: PlatformCreate
) -> PlatformSummary:
    if await session.scalar(select(exists().where(Platform.name == body.name))):
        raise Conflict(f"Platform '{body.name}' already exists.")
    repos = [await _platform_repo(session, repo) for repo in _unique(body.repos)]
    platform = Platform(
        name=body.name,
        type=body.type,
        distr_type=body.distr_type,
        distr_version=body.distr_version,
        test_dist_name=body.test_dist_name,
        arch_list=list(body.arch_list),
        data=dict(body.data),
        repos=repos,
    )
    session.add(platform)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name won the race
        raise Conflict(f"Platform '{body.name}' already exists.") from exc
    return summary(platform)


async def modify_platform(
    session: AsyncSession, actor: Actor, body: PlatformModify
) -> PlatformSummary:
    platform = await session.scalar(
        select(Platform)
        .where(Platform.name == body.name)
        .options(selectinload(Platform.repos))
        .with_for_update()
    )
    if platform is None:
        raise NotFound(f"Platform '{body.name}' is not found.")
    for field in ("type", "distr_type", "distr_version", "arch_list", "data"):
        value = getattr(body, field)
        if value is not None:
            setattr(platform, field, value)
    if body.repos is not None:
        await _reconcile_repos(session, platform, _unique(body.repos))
    await session.flush()
    await _refresh_bodies(session, platform.id)
    return summary(platform)


async def _refresh_bodies(session: AsyncSession, platform_id: int) -> None:
    """Tasks not yet finished get bodies from the changed platform (a started task's next
    attempt too); tasks of builds not yet ready get theirs when they are."""
    await store_bodies(
        session,
        (BuildTask.platform_id == platform_id)
        & BuildTask.status.in_([BuildTaskStatus.IDLE, BuildTaskStatus.STARTED])
        & BuildTask.task_body.is_not(None),
    )


def _key(repo: PlatformRepo | Repository) -> RepoKey:
    return (repo.name, repo.arch, repo.type)


def _unique(repos: list[PlatformRepo]) -> list[PlatformRepo]:
    seen: set[RepoKey] = set()
    for repo in repos:
        if _key(repo) in seen:
            name, arch, type_ = _key(repo)
            raise Invalid(f"Repository '{name}' (arch {arch}, type {type_}) is listed twice.")
        seen.add(_key(repo))
    return repos


async def _platform_repo(session: AsyncSession, wanted: PlatformRepo) -> Repository:
    """The stored repository with this (name, arch, type), created if new."""
    repo = await session.scalar(
        select(Repository).where(
            Repository.name == wanted.name,
            Repository.arch == wanted.arch,
            Repository.type == wanted.type,
            Repository.debug.is_(False),
        )
    )
    if repo is None:
        repo = Repository(
            name=wanted.name,
            arch=wanted.arch,
            url=wanted.url,
            type=wanted.type,
            debug=False,
            production=wanted.production,
        )
        session.add(repo)
    elif repo.url != wanted.url:
        raise Conflict(
            f"Repository '{wanted.name}' (arch {wanted.arch}) already exists with url "
            f"{repo.url}; repositories are shared by name, arch and type."
        )
    return repo


async def _reconcile_repos(
    session: AsyncSession, platform: Platform, wanted: list[PlatformRepo]
) -> None:
    current = {_key(repo): repo for repo in platform.repos}
    kept: list[Repository] = []
    for repo in wanted:
        existing = current.pop(_key(repo), None)
        if existing is None:
            kept.append(await _platform_repo(session, repo))
            continue
        existing.url = repo.url
        existing.production = repo.production
        kept.append(existing)
    platform.repos = kept
    await session.flush()
    await _drop_orphans(session, list(current.values()))


async def _drop_orphans(session: AsyncSession, repos: list[Repository]) -> None:
    """Delete repositories that no platform references any more."""
    for repo in repos:
        still_used = await session.scalar(
            select(exists().where(platform_repository.c.repository_id == repo.id))
        )
        if not still_used and repo.pulp_href is None:
            await session.execute(delete(Repository).where(Repository.id == repo.id))
