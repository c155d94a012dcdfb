"""GET /api/v1/queue: what waits, what runs, and on which nodes (administrators)."""

from datetime import datetime

from shared.contracts.base import WireModel


class QueueGroup(WireModel):
    """The unfinished tasks of one platform and arch.

    `idle` counts every task not yet taken; `runnable` those of them a node could take now
    (repositories ready, nothing awaited); `blocked` = `idle` - `runnable`. Waits are
    counted from the task's creation: a task that was blocked or requeued waited in total.
    """

    platform: str
    arch: str
    idle: int
    runnable: int
    blocked: int
    started: int
    oldest_runnable_since: datetime | None
    oldest_runnable_wait_seconds: float | None


class NodeTask(WireModel):
    task_id: int
    build_id: int
    platform: str
    arch: str
    attempt: int
    # Last claim or ping of the task.
    last_seen: datetime | None
    lease_expires_at: datetime | None
    # The lease ran out and the reaper has not taken the task back yet.
    lease_expired: bool


class NodeOut(WireModel):
    """A node holding started tasks: it claimed or pinged within its lease period."""

    node_id: str
    last_seen: datetime | None
    tasks: list[NodeTask]


class QueueOut(WireModel):
    at: datetime
    idle: int
    runnable: int
    started: int
    oldest_runnable_wait_seconds: float | None
    groups: list[QueueGroup]
    nodes: list[NodeOut]
