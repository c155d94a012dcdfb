"""Releases (REFERENCE §3 rows 17-20, §5.11): bodies kept for wire compatibility."""

from typing import Any

from shared.contracts.base import WireModel
from shared.contracts.users import UserOut


class ReleaseCreate(WireModel):
    builds: list[int]
    platform_id: int
    reference_platform_id: int


class ReleaseUpdate(WireModel):
    builds: list[int] | None = None
    plan: dict[str, Any] | None = None


class ReleaseOut(WireModel):
    id: int
    status: int
    build_ids: list[int]
    plan: dict[str, Any] | None
    created_by: UserOut


class ReleaseCommitReply(WireModel):
    release: ReleaseOut
    message: str
