"""What Build Nodes send and read (CLIENTS §2, REFERENCE §3.1)."""

from typing import Any, Literal

from pydantic import Field

from shared.contracts.base import WireModel

ArtifactType = Literal["rpm", "build_log"]
BuildDoneStatus = Literal["done", "failed", "excluded"]


class PingRequest(WireModel):
    active_tasks: list[int]


class GetTaskRequest(WireModel):
    supported_arches: list[str] = Field(min_length=1)


class TaskRef(WireModel):
    url: str
    git_ref: str | None = None


class TaskPlatform(WireModel):
    name: str
    type: Literal["rpm", "deb"]
    data: dict[str, Any]


class TaskCreatedBy(WireModel):
    name: str
    email: str


class TaskRepository(WireModel):
    name: str
    url: str


class Task(WireModel):
    """The answer to get_task; every field is always present (the node validates them all)."""

    id: int
    arch: str
    ref: TaskRef
    platform: TaskPlatform
    created_by: TaskCreatedBy
    repositories: list[TaskRepository]
    linked_builds: list[int]


class BuildDoneArtifact(WireModel):
    name: str = Field(min_length=1)
    type: ArtifactType
    href: str = Field(min_length=1)


class BuildDone(WireModel):
    task_id: int
    status: BuildDoneStatus
    artifacts: list[BuildDoneArtifact] = []


class BuildDoneReply(WireModel):
    ok: bool
