"""A task's reported artifacts, filed into the build's repositories on the real Pulp."""

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from shared.contracts.build_node import ArtifactType, BuildTaskFinished, ReportedArtifact
from shared.db.models import BinaryRpm, BuildArtifact, InboxMessage, Repository, SourceRpm
from shared.db.session import SessionFactory
from tests.support.artifacts import (
    BuildMaker,
    EventLog,
    PlannedBuild,
    build_repositories,
    repo_content,
    served_packages,
)
from tests.support.events import EventBus
from tests.support.pulp_node import upload_artifact
from tests.support.rpms import RpmFactory
from tests.support.waiting import eventually

pytestmark = [pytest.mark.pulp, pytest.mark.usefixtures("artifacts_service")]

RPM_CONTENT = "rpm/packages"
FILE_CONTENT = "file/files"


@pytest.fixture(scope="module")
async def ready_build(
    make_build: BuildMaker, module_bus: EventBus, event_log: EventLog
) -> PlannedBuild:
    build = await make_build("files", ["x86_64", "i686"])
    await module_bus.publish(build.created_event())
    await event_log.wait_for("build.repos_ready", build_id=build.build_id)
    return build


async def repos_by_name(sessions: SessionFactory, build_id: int) -> dict[str, Repository]:
    return {r.name: r for r in await build_repositories(sessions, build_id)}


def report(
    build: PlannedBuild,
    arch: str,
    attempt: int,
    artifacts: list[ReportedArtifact],
    status: str = "done",
) -> BuildTaskFinished:
    return BuildTaskFinished.model_validate(
        {
            "task_id": build.task_ids[arch],
            "build_id": build.build_id,
            "attempt": attempt,
            "status": status,
            "platform": build.platform,
            "arch": arch,
            "artifacts": [a.model_dump() for a in artifacts],
        }
    )


async def uploaded(
    pulp_http: httpx.AsyncClient, path: Path, kind: ArtifactType = "rpm"
) -> ReportedArtifact:
    # A small chunk size makes even these tiny files go up in several Content-Range chunks.
    href = await upload_artifact(pulp_http, path, chunk_size=2048)
    return ReportedArtifact(name=path.name, type=kind, artifact_href=href)


async def rows_of(sessions: SessionFactory, task_id: int, attempt: int) -> list[BuildArtifact]:
    async with sessions() as session:
        found = await session.scalars(
            select(BuildArtifact)
            .where(BuildArtifact.build_task_id == task_id, BuildArtifact.attempt == attempt)
            .order_by(BuildArtifact.id)
        )
        return list(found)


async def all_handled(sessions: SessionFactory, message_ids: list[str]) -> bool:
    async with sessions() as session:
        seen = await session.scalars(
            select(InboxMessage.message_id).where(
                InboxMessage.consumer == "artifacts",
                InboxMessage.message_id.in_([uuid.UUID(m) for m in message_ids]),
            )
        )
        return len(list(seen)) == len(message_ids)


def names(units: list[dict[str, Any]], key: str = "location_href") -> set[str]:
    return {str(unit[key]).rsplit("/", 1)[-1] for unit in units}


async def test_a_report_files_every_artifact_into_its_repository_once(
    ready_build: PlannedBuild,
    rpms: RpmFactory,
    tmp_path: Path,
    sessions: SessionFactory,
    module_bus: EventBus,
    event_log: EventLog,
    pulp_http: httpx.AsyncClient,
) -> None:
    build, packages = ready_build, rpms(arch="x86_64")
    logs = {"mock_root.1.log": b"root log\n", "mock.1.cfg": b"cfg\n", "mock.srpm.1.cfg": b"cfg\n"}
    for name, body in logs.items():
        (tmp_path / name).write_bytes(body)
    artifacts = [await uploaded(pulp_http, path) for path in packages.all]
    artifacts += [await uploaded(pulp_http, tmp_path / name, "build_log") for name in logs]
    assert artifacts[-1].artifact_href == artifacts[-2].artifact_href  # identical files

    event = report(build, "x86_64", 1, artifacts)
    first = await module_bus.publish(event)
    await module_bus.publish(event, message_id=first)  # redelivered
    other = await module_bus.publish(event)  # the same report published again
    stored = await event_log.wait_for(
        "build_task.artifacts_stored", task_id=event.task_id, attempt=1
    )
    await eventually(lambda: all_handled(sessions, [first, other]), timeout=120)
    assert stored["error"] is None
    assert len(event_log.of("build_task.artifacts_stored", task_id=event.task_id, attempt=1)) == 1

    rows = await rows_of(sessions, event.task_id, 1)
    assert [(r.name, r.type, r.artifact_href) for r in rows] == [
        (a.name, a.type, a.artifact_href) for a in artifacts
    ]
    assert all(r.href and r.href.startswith("/pulp/api/v3/content/") for r in rows)
    # The packages' NEVRA as Pulp read it from their headers, for the feed's rpm_* filters.
    assert [(r.rpm_name, r.rpm_epoch, r.rpm_version, r.rpm_release, r.rpm_arch) for r in rows] == [
        ("albs-hello", 0, "1.0", "1", "src"),
        ("albs-hello", 0, "1.0", "1", "x86_64"),
        ("albs-hello-data", 0, "1.0", "1", "noarch"),
        ("albs-hello-debuginfo", 0, "1.0", "1", "x86_64"),
        *[(None, None, None, None, None)] * len(logs),
    ]
    async with sessions() as session:
        [source] = await session.scalars(
            select(SourceRpm).where(SourceRpm.artifact_id.in_([r.id for r in rows]))
        )
        binaries = list(
            await session.scalars(
                select(BinaryRpm).where(BinaryRpm.artifact_id.in_([r.id for r in rows]))
            )
        )
    assert source.artifact_id == rows[0].id
    assert sorted(b.artifact_id for b in binaries) == [rows[1].id, rows[2].id, rows[3].id]
    assert {b.source_rpm_id for b in binaries} == {source.id}

    p, b = build.platform, build.build_id
    repos = await repos_by_name(sessions, b)
    expected = {
        f"{p}-src-{b}-br": {packages.src.name},
        f"{p}-x86_64-{b}-br": {packages.binary.name, packages.noarch.name},
        f"{p}-x86_64-{b}-debug-br": {packages.debuginfo.name},
    }
    for name, files in expected.items():
        version, units = await repo_content(pulp_http, str(repos[name].pulp_href), RPM_CONTENT)
        assert (version, names(units)) == (1, files), name  # one new version per report
    for name in (f"{p}-i686-{b}-br", f"{p}-i686-{b}-debug-br"):
        assert (await repo_content(pulp_http, str(repos[name].pulp_href), RPM_CONTENT))[0] == 0

    log_repo = repos[f"{p}-x86_64-{b}-artifacts-{event.task_id}"]
    assert (log_repo.type, log_repo.arch, log_repo.debug) == ("build_log", "x86_64", False)
    version, units = await repo_content(pulp_http, str(log_repo.pulp_href), FILE_CONTENT)
    assert (version, names(units, "relative_path")) == (1, set(logs))

    served = await served_packages(repos[f"{p}-x86_64-{b}-br"].url)
    assert served == {path.name: path.read_bytes() for path in (packages.binary, packages.noarch)}
    async with httpx.AsyncClient(timeout=30) as content:
        for name, body in logs.items():
            assert (await content.get(f"{log_repo.url}{name}")).content == body


async def test_a_failed_attempt_without_source_rpm_is_stored_unlinked(
    ready_build: PlannedBuild,
    rpms: RpmFactory,
    sessions: SessionFactory,
    module_bus: EventBus,
    event_log: EventLog,
    pulp_http: httpx.AsyncClient,
) -> None:
    packages = rpms(arch="i686")
    event = report(ready_build, "i686", 1, [await uploaded(pulp_http, packages.binary)], "failed")
    await module_bus.publish(event)
    stored = await event_log.wait_for(
        "build_task.artifacts_stored", task_id=event.task_id, attempt=1
    )

    assert stored["error"] is None
    [row] = await rows_of(sessions, event.task_id, 1)
    async with sessions() as session:
        [binary] = await session.scalars(select(BinaryRpm).where(BinaryRpm.artifact_id == row.id))
        assert (
            await session.scalar(select(SourceRpm).where(SourceRpm.artifact_id == row.id)) is None
        )
    assert binary.source_rpm_id is None


@pytest.mark.parametrize(
    ("attempt", "href"),
    [
        # A fixed uuid: xdist workers must collect identical test ids.
        (2, "/pulp/api/v3/artifacts/5ae1662c-f7ff-4f72-baaf-b5608abb354c/"),
        (3, "http://127.0.0.2:9/pulp/api/v3/artifacts/elsewhere/"),  # never requested
    ],
)
async def test_an_artifact_pulp_does_not_have_is_reported_as_an_error(
    attempt: int,
    href: str,
    ready_build: PlannedBuild,
    sessions: SessionFactory,
    module_bus: EventBus,
    event_log: EventLog,
) -> None:
    missing = ReportedArtifact(name="ghost-1.0-1.x86_64.rpm", type="rpm", artifact_href=href)
    event = report(ready_build, "x86_64", attempt, [missing])
    await module_bus.publish(event)
    stored = await event_log.wait_for(
        "build_task.artifacts_stored", task_id=event.task_id, attempt=attempt
    )

    assert stored["error"] is not None
    assert href.removeprefix("http://127.0.0.2:9") in stored["error"]
    assert "ghost-1.0-1.x86_64.rpm" in stored["error"]
    assert await rows_of(sessions, event.task_id, attempt) == []


async def test_a_report_without_artifacts_is_stored_at_once(
    ready_build: PlannedBuild, sessions: SessionFactory, module_bus: EventBus, event_log: EventLog
) -> None:
    event = report(ready_build, "i686", 2, [], "excluded")
    await module_bus.publish(event)
    stored = await event_log.wait_for(
        "build_task.artifacts_stored", task_id=event.task_id, attempt=2
    )

    assert stored["error"] is None
    assert await rows_of(sessions, event.task_id, 2) == []
