"""Test tasks and ALTS results (REFERENCE §3 rows 21-25, CLIENTS §6)."""

from typing import Any

from shared.contracts.base import WireModel


class TestResult(WireModel):
    __test__ = False

    api_version: str
    result: dict[str, Any]


class TestTaskOut(WireModel):
    __test__ = False

    id: int
    package_name: str
    package_version: str
    package_release: str | None
    status: int
    revision: int
    alts_response: dict[str, Any] | None


class OkReply(WireModel):
    ok: bool
