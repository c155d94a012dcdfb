"""The albs-node Task of each task, built once and stored ready to send (decision 0008).

Built when a build's repositories are ready (every idle task of the build), again for tasks
a restart puts back in the queue, and for the unfinished tasks of a platform that changed.
The claim then only reads the stored body.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler import mock_options
from shared.contracts.build_node import (
    Task,
    TaskCreatedBy,
    TaskPlatform,
    TaskRef,
    TaskRepository,
)
from shared.db.models import (
    Build,
    BuildTask,
    BuildTaskRef,
    Platform,
    Repository,
    User,
    build_dependency,
    build_repo,
    platform_repository,
)

# Build and test logs are linked to the build too; nodes never read them.
LOG_REPO_TYPES = ("build_log", "test_log")


@dataclass(frozen=True)
class Repo:
    name: str
    url: str
    arch: str
    type: str


@dataclass(frozen=True)
class PlatformFacts:
    name: str
    type: str
    data: dict[str, Any]
    repos: list[Repo]


@dataclass(frozen=True)
class BuildFacts:
    mock_options: dict[str, Any] | None
    user_name: str
    user_email: str
    repos: list[Repo]
    linked: list[tuple[int, list[Repo]]] = field(default_factory=list)


@dataclass(frozen=True)
class TaskFacts:
    id: int
    build_id: int
    platform_id: int
    arch: str
    url: str
    git_ref: str | None


def describe(task: TaskFacts, platform: PlatformFacts, build: BuildFacts) -> Task:
    """The Task as albs-node reads it: every field present; repositories in reference order
    (platform, build, linked builds), only those of the task's arch that hold packages."""
    repos = [
        *platform.repos,
        *build.repos,
        *(repo for _, linked_repos in build.linked for repo in linked_repos),
    ]
    return Task(
        id=task.id,
        arch=task.arch,
        ref=TaskRef(url=task.url, git_ref=task.git_ref),
        platform=TaskPlatform(
            name=platform.name,
            type="deb" if platform.type == "deb" else "rpm",
            data=mock_options.merge(platform.data, build.mock_options),
        ),
        created_by=TaskCreatedBy(name=build.user_name, email=build.user_email),
        repositories=[
            TaskRepository(name=r.name, url=r.url)
            for r in repos
            if r.arch == task.arch and r.type not in LOG_REPO_TYPES
        ],
        linked_builds=[linked_id for linked_id, _ in build.linked],
    )


def body(task: TaskFacts, platform: PlatformFacts, build: BuildFacts) -> dict[str, Any]:
    return describe(task, platform, build).model_dump(mode="json")


async def store_bodies(session: AsyncSession, which: ColumnElement[bool]) -> int:
    """Build and store the body of every task `which` selects; returns how many."""
    tasks = await _tasks(session, which)
    if not tasks:
        return 0
    platforms = await _platforms(session, {t.platform_id for t in tasks})
    builds = await _builds(session, {t.build_id for t in tasks})
    rows = [
        {"id": t.id, "task_body": body(t, platforms[t.platform_id], builds[t.build_id])}
        for t in tasks
    ]
    await session.execute(update(BuildTask), rows)
    return len(rows)


async def _tasks(session: AsyncSession, which: ColumnElement[bool]) -> list[TaskFacts]:
    rows = await session.execute(
        select(
            BuildTask.id,
            BuildTask.build_id,
            BuildTask.platform_id,
            BuildTask.arch,
            BuildTaskRef.url,
            BuildTaskRef.git_ref,
        )
        .join(BuildTaskRef, BuildTaskRef.id == BuildTask.ref_id)
        .where(which)
        .order_by(BuildTask.id)
    )
    return [TaskFacts(*row) for row in rows]


async def _platforms(session: AsyncSession, ids: set[int]) -> dict[int, PlatformFacts]:
    repos = await _repos(
        session, platform_repository.c.platform_id, platform_repository.c.repository_id, ids
    )
    # FOR SHARE: a platform change waits for these bodies and then rebuilds them (or the
    # other way round), so no body is built from a platform as it was before a change.
    rows = await session.execute(
        select(Platform.id, Platform.name, Platform.type, Platform.data)
        .where(Platform.id.in_(ids))
        .with_for_update(read=True)
    )
    return {pid: PlatformFacts(name, kind, data, repos[pid]) for pid, name, kind, data in rows}


async def _builds(session: AsyncSession, ids: set[int]) -> dict[int, BuildFacts]:
    links = (
        await session.execute(
            select(build_dependency.c.build_id, build_dependency.c.linked_build_id)
            .where(build_dependency.c.build_id.in_(ids))
            .order_by(build_dependency.c.linked_build_id)
        )
    ).all()
    linked_ids = {linked for _, linked in links}
    repos = await _repos(
        session, build_repo.c.build_id, build_repo.c.repository_id, ids | linked_ids
    )
    linked: dict[int, list[tuple[int, list[Repo]]]] = defaultdict(list)
    for build_id, linked_id in links:
        linked[build_id].append((linked_id, repos[linked_id]))
    rows = await session.execute(
        select(Build.id, Build.mock_options, User.username, User.email)
        .join(User, User.id == Build.user_id)
        .where(Build.id.in_(ids))
    )
    return {
        bid: BuildFacts(options, name, email, repos[bid], linked[bid])
        for bid, options, name, email in rows
    }


async def _repos(
    session: AsyncSession, owner: Any, repository: Any, owners: Iterable[int]
) -> dict[int, list[Repo]]:
    """Repositories of each owner (platform or build), in id order as the relationships."""
    rows = await session.execute(
        select(owner, Repository.name, Repository.url, Repository.arch, Repository.type)
        .join(Repository, Repository.id == repository)
        .where(owner.in_(list(owners)))
        .order_by(Repository.id)
    )
    found: dict[int, list[Repo]] = defaultdict(list)
    for owner_id, name, url, arch, kind in rows:
        found[owner_id].append(Repo(name, url, arch, kind))
    return found
