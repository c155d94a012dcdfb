"""Builds with real RPMs filed in Pulp, and distributions of them, for the distribution tests.

The build rows are written as the scheduler writes them, with ids from the module's own
range (Pulp outlives test databases); the artifacts service in-process makes the build's
repositories and files the packages, as it does for a node's report.
"""

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from artifacts.pulp import RPM_REPO, PulpClient
from auth.users import ensure_user
from shared.contracts.build_node import BuildTaskFinished, ReportedArtifact
from shared.contracts.builds import BuildCreated
from shared.db.models import (
    Build,
    BuildTask,
    BuildTaskRef,
    BuildTaskStatus,
    Distribution,
    Platform,
    Repository,
    UserKind,
    distribution_repositories,
)
from shared.db.session import SessionFactory, in_transaction, unit_of_work
from tests.support.artifacts import EventLog, repo_content
from tests.support.events import EventBus
from tests.support.fixtures import first_build_id
from tests.support.pulp_node import PulpServer, upload_artifact
from tests.support.rpms import RpmSet

PLATFORMS_YAML = Path(__file__).parent.parent / "integration" / "data" / "platforms.yaml"
PLATFORM = "AlmaLinux-8"
OWNER = "distro-owner"
# The build ids of the distribution tests (the lead's range for this work: offset 2100).
BUILD_ID_OFFSET = 2100
URL = "/api/v1/distro/"


@dataclass
class FiledBuild:
    build_id: int
    task_id: int
    packages: RpmSet


@dataclass
class PulpLeftovers:
    """Name prefixes of the Pulp repositories a module made; removed when it ends."""

    prefixes: list[str] = field(default_factory=list)


async def ensure_platform(sessions: SessionFactory) -> int:
    """The test platform (AlmaLinux-8 of platforms.yaml), inserted when the database lacks it."""
    async with unit_of_work(sessions) as session:
        found = await session.scalar(select(Platform.id).where(Platform.name == PLATFORM))
        if found is not None:
            return int(found)
        data = yaml.safe_load(PLATFORMS_YAML.read_text())
        assert data["name"] == PLATFORM
        platform = Platform(**{k: v for k, v in data.items() if k != "repos"})
        session.add(platform)
        await session.flush()
        return platform.id


async def owner_id(sessions: SessionFactory) -> int:
    user = await in_transaction(
        sessions, ensure_user, OWNER, email=f"{OWNER}@example.org", kind=UserKind.USER, admin=False
    )
    return user.id


async def file_build(
    sessions: SessionFactory,
    bus: EventBus,
    events: EventLog,
    pulp_http: httpx.AsyncClient,
    build_id: int,
    packages: RpmSet,
) -> FiledBuild:
    """A build of one x86_64 task, completed, its four packages filed into its repositories."""
    platform_id = await ensure_platform(sessions)
    user = await owner_id(sessions)
    async with unit_of_work(sessions) as session:
        session.add(Build(id=build_id, user_id=user, ready=True))
        await session.flush()
        ref = BuildTaskRef(build_id=build_id, url="https://git.example.org/rpms/hello.git")
        session.add(ref)
        await session.flush()
        task = BuildTask(
            build_id=build_id,
            platform_id=platform_id,
            ref_id=ref.id,
            index=0,
            arch="x86_64",
            attempt=1,
            status=BuildTaskStatus.COMPLETED,
        )
        session.add(task)
        await session.flush()
        task_id = task.id
    created = BuildCreated.model_validate(
        {
            "build_id": build_id,
            "platforms": [{"platform_id": platform_id, "name": PLATFORM, "arch_list": ["x86_64"]}],
            "tasks": [{"task_id": task_id, "platform": PLATFORM, "arch": "x86_64"}],
        }
    )
    await bus.publish(created)
    await events.wait_for("build.repos_ready", build_id=build_id)
    await report(bus, events, pulp_http, build_id, task_id, 1, packages)
    return FiledBuild(build_id, task_id, packages)


async def report(
    bus: EventBus,
    events: EventLog,
    pulp_http: httpx.AsyncClient,
    build_id: int,
    task_id: int,
    attempt: int,
    packages: RpmSet,
) -> None:
    """A node's report of the task's packages, filed by the artifacts service."""
    artifacts = [
        ReportedArtifact(name=p.name, type="rpm", artifact_href=await upload_artifact(pulp_http, p))
        for p in packages.all
    ]
    finished = BuildTaskFinished(
        task_id=task_id,
        build_id=build_id,
        attempt=attempt,
        status="done",
        platform=PLATFORM,
        arch="x86_64",
        artifacts=artifacts,
    )
    await bus.publish(finished)
    stored = await events.wait_for("build_task.artifacts_stored", task_id=task_id, attempt=attempt)
    assert stored["error"] is None, stored


async def distribution_repos(sessions: SessionFactory, name: str) -> dict[str, Repository]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Repository)
            .join(distribution_repositories)
            .join(Distribution)
            .where(Distribution.name == name)
        )
        return {r.name: r for r in rows}


async def package_names(pulp_http: httpx.AsyncClient, repo: Repository) -> set[str]:
    """File names of the packages in the repository's latest version."""
    _, units = await repo_content(pulp_http, str(repo.pulp_href), "rpm/packages")
    return {str(unit["location_href"]).rsplit("/", 1)[-1] for unit in units}


async def contents(
    pulp_http: httpx.AsyncClient, repos: dict[str, Repository]
) -> dict[str, set[str]]:
    """repository name -> package file names, for every repository that holds any."""
    found = {name: await package_names(pulp_http, repo) for name, repo in repos.items()}
    return {name: files for name, files in found.items() if files}


@pytest.fixture(scope="session")
def build_ids(run_id: str) -> Iterator[int]:
    """One counter for the run: every module of it gets ids (and Pulp names) of its own."""
    return itertools.count(first_build_id(run_id, BUILD_ID_OFFSET))


@pytest.fixture(scope="module")
async def pulp_leftovers(pulp_server: PulpServer) -> AsyncIterator[PulpLeftovers]:
    leftovers = PulpLeftovers()
    yield leftovers
    pulp = PulpClient(pulp_server.url, pulp_server.user, pulp_server.password)
    hrefs: list[str] = []
    for prefix in leftovers.prefixes:
        found: dict[str, Any] = await pulp.get(
            RPM_REPO.repositories, name__startswith=prefix, limit=100
        )
        hrefs += [repo["pulp_href"] for repo in found["results"]]
    await asyncio.gather(*(pulp.delete_repository(href) for href in hrefs))
    await pulp.close()
