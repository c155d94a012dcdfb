"""Builds with real RPMs filed in Pulp, and distributions of them, for the distribution tests.

The build rows are written as the scheduler writes them, with ids from the module's own
range (Pulp outlives test databases); the artifacts service in-process makes the build's
repositories and files the packages, as it does for a node's report.
"""

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from artifacts.pulp import RPM_REPO
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
    distribution_packages,
    distribution_repositories,
)
from shared.db.session import SessionFactory, in_transaction, unit_of_work
from tests.support.artifacts import EventLog, remove_pulp_repositories, repo_content
from tests.support.events import EventBus
from tests.support.fixtures import first_build_id
from tests.support.pulp_node import PulpServer, upload_artifact
from tests.support.rpms import RpmFactory, RpmSet

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
    await remove_pulp_repositories(pulp_server, leftovers.prefixes, (RPM_REPO,))


def distro_name(run_id: str, label: str, leftovers: PulpLeftovers) -> str:
    name = f"t{run_id}-{label}-{uuid.uuid4().hex[:4]}"
    leftovers.prefixes.append(f"{name}-")
    return name


async def create(api: httpx.AsyncClient, admin: dict[str, str], name: str) -> dict[str, object]:
    answer = await api.post(URL, json={"name": name, "platforms": [PLATFORM]}, headers=admin)
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


FileABuild = Callable[[str], Awaitable[FiledBuild]]


@pytest.fixture(scope="module")
def file_a_build(
    sessions: SessionFactory,
    module_bus: EventBus,
    event_log: EventLog,
    pulp_http: httpx.AsyncClient,
    build_ids: Iterator[int],
    pulp_leftovers: PulpLeftovers,
    rpms: RpmFactory,
) -> FileABuild:
    """`await file_a_build(package_name)`: a build of the module, filed (`file_build`) by the
    module's artifacts service (its tests use one)."""

    async def make(name: str) -> FiledBuild:
        build_id = next(build_ids)
        pulp_leftovers.prefixes += [f"{PLATFORM}-src-{build_id}-", f"{PLATFORM}-x86_64-{build_id}-"]
        packages = rpms(name=name, arch="x86_64")
        return await file_build(sessions, module_bus, event_log, pulp_http, build_id, packages)

    return make


@pytest.fixture(scope="module")
async def filed_pair(file_a_build: FileABuild) -> tuple[FiledBuild, FiledBuild]:
    """Two builds filed once for the tests of a module that only add them to distributions
    and remove them again (which changes neither the builds nor their own repositories)."""
    return await file_a_build("albs-distro-one"), await file_a_build("albs-distro-two")


def expected(distro: str, build: FiledBuild) -> dict[str, set[str]]:
    """Where the build's packages belong in the distribution (REFERENCE §11.19 fixed)."""
    p = build.packages
    return {
        f"{distro}-{PLATFORM}-src-dr": {p.src.name},
        f"{distro}-{PLATFORM}-x86_64-dr": {p.binary.name, p.noarch.name},
        f"{distro}-{PLATFORM}-x86_64-debug-dr": {p.debuginfo.name},
    }


def merged(*parts: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for part in parts:
        for repo, files in part.items():
            out[repo] = out.get(repo, set()) | files
    return out


async def links(sessions: SessionFactory, *names: str) -> set[tuple[str, int]]:
    async with sessions() as session:
        rows = await session.execute(
            select(Distribution.name, distribution_packages.c.build_id)
            .join(distribution_packages)
            .where(Distribution.name.in_(names))
        )
        return {(name, build_id) for name, build_id in rows.all()}
