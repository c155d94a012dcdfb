"""Builds: creating, listing and managing them (REFERENCE §3 rows 4-8, §3.1)."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from shared.contracts.base import WireModel
from shared.contracts.bounds import (
    ARCHES_MAX,
    LIST_MAX,
    PLATFORMS_MAX,
    Arch,
    DbId,
    Flag,
    GitRef,
    JsonObject,
    Name,
    Url,
)
from shared.contracts.messages import Actor, Event, RpcSpec
from shared.contracts.users import UserOut


class BuildCreatePlatform(WireModel):
    name: Name
    arch_list: list[Arch] = Field(min_length=1, max_length=ARCHES_MAX)


class BuildCreateRef(WireModel):
    url: Url
    git_ref: GitRef | None = None
    # 1 git branch, 2 git tag, 3 src-RPM url, 4 git ref (the Dec-2021 frontend's codes).
    ref_type: int | None = Field(default=None, ge=1, le=4)
    is_module: Flag = False


class BuildCreate(WireModel):
    platforms: list[BuildCreatePlatform] = Field(min_length=1, max_length=PLATFORMS_MAX)
    tasks: list[BuildCreateRef] = Field(min_length=1, max_length=LIST_MAX)
    linked_builds: list[DbId] | None = Field(default=None, max_length=LIST_MAX)
    mock_options: JsonObject | None = None


class BuildStatus(StrEnum):
    """Derived from the task statuses; the reference stored no build status."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BuildPlatformOut(WireModel):
    id: int
    type: str
    name: str
    arch_list: list[str]


class BuildRefOut(WireModel):
    url: str
    git_ref: str | None
    ref_type: int | None = None
    is_module: bool = False


class BuildArtifactOut(WireModel):
    id: int
    name: str
    type: str
    href: str


class BuildTaskOut(WireModel):
    id: int
    ts: datetime | None
    status: int
    index: int
    arch: str
    platform: BuildPlatformOut
    ref: BuildRefOut
    artifacts: list[BuildArtifactOut]
    error: str | None = None
    # Added for watchers (`albs build watch`); the reference did not send these.
    node_id: str | None = None
    attempt: int | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None


class BuildOut(WireModel):
    id: int
    created_at: datetime
    tasks: list[BuildTaskOut]
    user: UserOut
    linked_builds: list[int]
    mock_options: dict[str, Any] | None
    status: BuildStatus
    failure_reason: str | None = None
    # Every current RPM carries a signature (a sign task completed since the last restart).
    signed: bool = False


class BuildsPage(WireModel):
    builds: list[BuildOut]
    total_builds: int
    current_page: int


class CreateBuild(WireModel):
    actor: Actor
    build: BuildCreate
    # The client's Idempotency-Key: the same key and body within 24 h answer the first build.
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)


class BuildCommand(WireModel):
    """A command about one existing build (restart its failed tasks, delete it)."""

    actor: Actor
    build_id: int


CREATE_BUILD = RpcSpec("build.create", CreateBuild, BuildOut)
RESTART_FAILED: RpcSpec[BuildCommand, WireModel] = RpcSpec(
    "build.restart_failed", BuildCommand, None
)
DELETE_BUILD: RpcSpec[BuildCommand, WireModel] = RpcSpec("build.delete", BuildCommand, None)


class PlannedPlatform(WireModel):
    platform_id: int
    name: str
    arch_list: list[str]


class PlannedTask(WireModel):
    task_id: int
    platform: str
    arch: str


class BuildCreated(Event):
    """A build was planned; its Pulp repositories are to be created."""

    routing_key = "build.created"
    build_id: int
    platforms: list[PlannedPlatform]
    tasks: list[PlannedTask]


class BuildReposReady(Event):
    routing_key = "build.repos_ready"
    build_id: int


class BuildReposFailed(Event):
    routing_key = "build.repos_failed"
    build_id: int
    reason: str


class BuildCompleted(Event):
    routing_key = "build.completed"
    build_id: int
    status: BuildStatus
    tasks_by_status: dict[str, int]


class BuildDeleted(Event):
    """A build and its rows are gone; these Pulp repositories are to be removed."""

    routing_key = "build.deleted"
    build_id: int
    repository_hrefs: list[str]
