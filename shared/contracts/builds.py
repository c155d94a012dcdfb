"""Builds: creating, listing and managing them (REFERENCE §3 rows 4-8, §3.1)."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from shared.contracts.base import WireModel
from shared.contracts.users import UserOut


class BuildCreatePlatform(WireModel):
    name: str = Field(min_length=1)
    arch_list: list[str] = Field(min_length=1)


class BuildCreateRef(WireModel):
    url: str = Field(min_length=1)
    git_ref: str | None = None


class BuildCreate(WireModel):
    platforms: list[BuildCreatePlatform] = Field(min_length=1)
    tasks: list[BuildCreateRef] = Field(min_length=1)
    linked_builds: list[int] | None = None
    mock_options: dict[str, Any] | None = None


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


class BuildOut(WireModel):
    id: int
    created_at: datetime
    tasks: list[BuildTaskOut]
    user: UserOut
    linked_builds: list[int]
    mock_options: dict[str, Any] | None
    status: BuildStatus
    failure_reason: str | None = None


class BuildsPage(WireModel):
    builds: list[BuildOut]
    total_builds: int
    current_page: int
