"""What Build Nodes send and read (CLIENTS §2, REFERENCE §3.1)."""

from typing import Any, Literal

from pydantic import Field

from shared.contracts.base import WireModel
from shared.contracts.bounds import ARCHES_MAX, LIST_MAX, Arch, DbId, Href, Name
from shared.contracts.messages import Actor, Event, RpcSpec

ArtifactType = Literal["rpm", "build_log"]
BuildDoneStatus = Literal["done", "failed", "excluded"]


class PingRequest(WireModel):
    active_tasks: list[DbId] = Field(max_length=LIST_MAX)


class GetTaskRequest(WireModel):
    supported_arches: list[Arch] = Field(min_length=1, max_length=ARCHES_MAX)


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
    name: Name
    type: ArtifactType
    href: Href


class BuildDone(WireModel):
    task_id: DbId
    status: BuildDoneStatus
    artifacts: list[BuildDoneArtifact] = Field(default=[], max_length=LIST_MAX)


class BuildDoneReply(WireModel):
    ok: bool


class GetTask(WireModel):
    actor: Actor
    supported_arches: list[str]


class ReportBuildDone(WireModel):
    actor: Actor
    report: BuildDone


GET_TASK = RpcSpec("build_node.get_task", GetTask, Task)
BUILD_DONE = RpcSpec("build_node.build_done", ReportBuildDone, BuildDoneReply)


class NodePinged(Event):
    """A node is alive and still building these tasks (published by the gateway)."""

    routing_key = "build_node.pinged"
    active_tasks: list[int]
    node_id: str | None = None


class BuildTaskAssigned(Event):
    routing_key = "build_task.assigned"
    task_id: int
    build_id: int
    attempt: int
    arch: str
    node_id: str | None


class BuildTaskRequeued(Event):
    routing_key = "build_task.requeued"
    task_id: int
    build_id: int
    attempt: int
    node_id: str | None


class ReportedArtifact(WireModel):
    name: str
    type: ArtifactType
    artifact_href: str


class BuildTaskFinished(Event):
    """A node reported a result; its artifacts are to be filed into the build's repositories."""

    routing_key = "build_task.finished"
    task_id: int
    build_id: int
    attempt: int
    status: BuildDoneStatus
    platform: str
    arch: str
    artifacts: list[ReportedArtifact]


class BuildTaskArtifactsStored(Event):
    """The artifacts of one attempt are in Pulp (or could not be stored: `error`)."""

    routing_key = "build_task.artifacts_stored"
    task_id: int
    build_id: int
    attempt: int
    error: str | None = None
