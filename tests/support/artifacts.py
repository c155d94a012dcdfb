"""The artifacts service in-process, the events it emits, and what it left in Pulp.

Shared by the artifacts tests and reusable by end-to-end tests.
"""

import asyncio
import gzip
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
import httpx
import pytest
from faststream import FastStream
from faststream.rabbit import RabbitBroker
from sqlalchemy import select

from artifacts.handlers.builds import CONSUMER
from artifacts.main import create_app
from artifacts.pulp import LOG_REPO, RPM_REPO, PulpClient, PulpError, RepoKind
from artifacts.settings import ArtifactsSettings
from shared.contracts.build_node import BuildTaskArtifactsStored, BuildTaskFinished
from shared.contracts.builds import BuildCreated, BuildDeleted
from shared.contracts.test_tasks import TestTaskFinished, TestTasksCreated
from shared.contracts.topology import Topology
from shared.db.models import (
    Build,
    BuildTask,
    BuildTaskRef,
    Platform,
    Repository,
    User,
    build_repo,
)
from shared.db.session import SessionFactory, unit_of_work
from tests.support.events import EventBus
from tests.support.pulp_node import PulpServer
from tests.support.servers import Servers
from tests.support.stack import settings_for

CLEANUP_PASSES = 3
PULP_WAIT_SECONDS = 180.0  # one Pulp worker makes a build's repositories one task at a time
REPO_NS = "{http://linux.duke.edu/metadata/repo}"
COMMON_NS = "{http://linux.duke.edu/metadata/common}"


@dataclass(frozen=True)
class PlannedBuild:
    build_id: int
    platform: str
    arches: list[str]
    task_ids: dict[str, int]  # one task per arch

    def created_event(self) -> BuildCreated:
        return BuildCreated.model_validate(
            {
                "build_id": self.build_id,
                "platforms": [{"platform_id": 0, "name": self.platform, "arch_list": self.arches}],
                "tasks": [
                    {"task_id": t, "platform": self.platform, "arch": a}
                    for a, t in self.task_ids.items()
                ],
            }
        )


async def insert_build(sessions: SessionFactory, platform: str, arches: list[str]) -> PlannedBuild:
    """The rows the scheduler writes when it plans a build: one ref, one task per arch."""
    async with unit_of_work(sessions) as session:
        user = await session.scalar(select(User).where(User.username == "artifacts-tests"))
        if user is None:
            user = User(username="artifacts-tests", email="artifacts-tests@example.org")
            session.add(user)
        row = Platform(
            name=platform,
            type="rpm",
            distr_type="rhel",
            distr_version="8",
            test_dist_name="almalinux",
            arch_list=arches,
            data={},
        )
        session.add(row)
        await session.flush()
        build = Build(user_id=user.id)
        session.add(build)
        await session.flush()
        ref = BuildTaskRef(build_id=build.id, url="https://git.example.org/rpms/hello.git")
        session.add(ref)
        await session.flush()
        tasks = {
            arch: BuildTask(
                build_id=build.id, platform_id=row.id, ref_id=ref.id, index=0, arch=arch, attempt=1
            )
            for arch in arches
        }
        session.add_all(tasks.values())
        await session.flush()
        return PlannedBuild(build.id, platform, arches, {a: t.id for a, t in tasks.items()})


async def build_repositories(sessions: SessionFactory, build_id: int) -> list[Repository]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Repository)
            .join(build_repo, build_repo.c.repository_id == Repository.id)
            .where(build_repo.c.build_id == build_id)
            .order_by(Repository.name)
        )
        return list(rows)


class EventLog:
    """Every event of the chosen kinds published on the test run's exchange, as received."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []

    def of(self, routing_key: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            body
            for key, body in self.received
            if key == routing_key and all(body.get(k) == v for k, v in fields.items())
        ]

    async def wait_for(
        self, routing_key: str, *, timeout: float = PULP_WAIT_SECONDS, **fields: Any
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (found := self.of(routing_key, **fields)):
            if loop.time() > deadline:
                raise AssertionError(f"no {routing_key} {fields} within {timeout} s")
            await asyncio.sleep(0.05)
        return found[0]

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            self.received.append((message.routing_key or "", _json(message.body)))


def _json(body: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(body)
    return loaded


@pytest.fixture(scope="module")
async def event_log(servers: Servers, amqp_prefix: str) -> AsyncIterator[EventLog]:
    """Events the artifacts service emits, seen through an exclusive queue of the test."""
    log = EventLog()
    connection = await aio_pika.connect(servers.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            Topology(amqp_prefix).events.name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        for key in ("build.repos_ready", "build.repos_failed", "build_task.artifacts_stored"):
            await queue.bind(exchange, routing_key=key)
        await queue.consume(log._on_message)
        yield log


@pytest.fixture(scope="module")
async def module_bus(servers: Servers, amqp_prefix: str) -> AsyncIterator[EventBus]:
    broker = RabbitBroker(servers.amqp_url)
    await broker.start()
    yield EventBus(broker, Topology(amqp_prefix))
    await broker.stop()


async def _purge_artifacts_queues(amqp_url: str, prefix: str) -> None:
    """Events left from earlier tests (whose builds were truncated away) must not be replayed."""
    topology = Topology(prefix)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for event in (
            BuildCreated,
            BuildTaskFinished,
            BuildDeleted,
            BuildTaskArtifactsStored,
            TestTasksCreated,
            TestTaskFinished,
        ):
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(
                    topology.event_queue(CONSUMER, event).name, passive=True
                )
            except aio_pika.exceptions.ChannelClosed:
                continue  # not declared yet in this run
            await queue.purge()


@asynccontextmanager
async def running_artifacts(
    service_env: dict[str, str],
    servers: Servers,
    amqp_prefix: str,
    *,
    purge: bool = True,
    **settings: Any,
) -> AsyncIterator[FastStream]:
    """The artifacts service in this process, with these settings on top of the run's;
    `purge` first drops events left in its queues by earlier tests."""
    if purge:
        await _purge_artifacts_queues(servers.amqp_url, amqp_prefix)
    app = create_app(settings_for(ArtifactsSettings, service_env, **settings))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture(scope="module")
async def artifacts_service(
    service_env: dict[str, str], servers: Servers, amqp_prefix: str, pulp_server: PulpServer
) -> AsyncIterator[FastStream]:
    async with running_artifacts(
        service_env,
        servers,
        amqp_prefix,
        pulp_url=pulp_server.url,
        pulp_user=pulp_server.user,
        pulp_password=pulp_server.password,
    ) as app:
        yield app


async def repo_content(
    pulp_http: httpx.AsyncClient, repo_href: str, endpoint: str
) -> tuple[int, list[dict[str, Any]]]:
    """The latest version number of a repository and the content units in it."""
    repo = (await pulp_http.get(repo_href)).raise_for_status().json()
    version_href: str = repo["latest_version_href"]
    listed = await pulp_http.get(
        f"/pulp/api/v3/content/{endpoint}/", params={"repository_version": version_href}
    )
    units: list[dict[str, Any]] = listed.raise_for_status().json()["results"]
    return int(version_href.rstrip("/").rsplit("/", 1)[1]), units


async def served_packages(base_url: str) -> dict[str, bytes]:
    """file name -> bytes of every package the distribution serves, read via its repodata."""
    async with httpx.AsyncClient(timeout=30) as client:
        repomd = ET.fromstring((await client.get(f"{base_url}repodata/repomd.xml")).content)
        primary = next(d for d in repomd.iter(f"{REPO_NS}data") if d.get("type") == "primary")
        location = primary.find(f"{REPO_NS}location")
        assert location is not None
        primary_xml = gzip.decompress(
            (await client.get(base_url + location.get("href", ""))).content
        )
        served: dict[str, bytes] = {}
        for package in ET.fromstring(primary_xml).iter(f"{COMMON_NS}package"):
            href = package.find(f"{COMMON_NS}location")
            assert href is not None
            path = href.get("href", "")
            served[path.rsplit("/", 1)[-1]] = (
                (await client.get(base_url + path)).raise_for_status().content
            )
        return served


def unique_platform(run_id: str, label: str) -> str:
    """Pulp outlives test databases; the run id and a random part keep names apart."""
    return f"T{run_id}-{label}-{uuid.uuid4().hex[:4]}"


BuildMaker = Callable[[str, list[str]], Awaitable[PlannedBuild]]


@pytest.fixture(scope="module")
async def make_build(
    sessions: SessionFactory, pulp_server: PulpServer, run_id: str
) -> AsyncIterator[BuildMaker]:
    """`await make_build(label, arches)`: a planned build on a platform of its own, whose
    Pulp repositories (made by the service) are removed again when the module ends."""
    platforms: list[str] = []

    async def make(label: str, arches: list[str]) -> PlannedBuild:
        platforms.append(unique_platform(run_id, label))
        return await insert_build(sessions, platforms[-1], arches)

    yield make
    await remove_pulp_repositories(pulp_server, [f"{platform}-" for platform in platforms])


async def remove_pulp_repositories(
    pulp_server: PulpServer,
    prefixes: list[str],
    kinds: tuple[RepoKind, ...] = (RPM_REPO, LOG_REPO),
    names: Sequence[tuple[RepoKind, str]] = (),
) -> None:
    """Delete what a test left in the shared Pulp: the repositories (and their distributions)
    of these kinds whose names start with a prefix, and these (kind, name) ones. A service
    may still be publishing one of them (a build removed just now): a delete that collides
    with that fails, and the next pass finds what is left."""
    pulp = PulpClient(pulp_server.url, pulp_server.user, pulp_server.password)
    try:
        for attempt in range(CLEANUP_PASSES):
            try:
                await _remove_once(pulp, prefixes, kinds, names)
                return
            except PulpError:
                if attempt == CLEANUP_PASSES - 1:
                    raise
                await asyncio.sleep(2)
    finally:
        await pulp.close()


async def _remove_once(
    pulp: PulpClient,
    prefixes: list[str],
    kinds: tuple[RepoKind, ...],
    names: Sequence[tuple[RepoKind, str]],
) -> None:
    hrefs: list[str] = []
    for prefix in prefixes:
        for kind in kinds:
            found = await pulp.get(kind.repositories, name__startswith=prefix, limit=100)
            hrefs += [repo["pulp_href"] for repo in found["results"]]
    await asyncio.gather(*(pulp.delete_repository(href) for href in hrefs))
    await asyncio.gather(*(pulp.delete_repository_named(kind, name) for kind, name in names))


async def pulp_repos_named(
    pulp_http: httpx.AsyncClient, names: list[str], kind: str = "rpm/rpm"
) -> list[str]:
    """Which of these names exist in Pulp as repositories (and distributions `-distro`)."""
    found: list[str] = []
    for name in names:
        for endpoint, key in (
            (f"repositories/{kind}", name),
            (f"distributions/{kind}", f"{name}-distro"),
        ):
            answer = await pulp_http.get(f"/pulp/api/v3/{endpoint}/", params={"name": key})
            if answer.raise_for_status().json()["count"]:
                found.append(f"{endpoint}:{key}")
    return found
