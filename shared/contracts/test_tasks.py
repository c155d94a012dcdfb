"""Test tasks and ALTS results (REFERENCE §3 rows 21-25, §5.6; CLIENTS §6)."""

from datetime import datetime
from typing import Any

from pydantic import Field

from shared.contracts.base import WireModel
from shared.contracts.bounds import LIST_MAX, DbId, Href, JsonObject, Name, Text
from shared.contracts.messages import Actor, Event, RpcSpec


class TestResult(WireModel):
    """What ALTS posts to `callback_href` once a test ran (or broke)."""

    __test__ = False

    api_version: Text
    result: JsonObject


class TestLog(WireModel):
    """One log ALTS uploaded to Pulp (`href` is a Pulp artifact)."""

    __test__ = False

    name: Name
    href: Href


class TestTaskOut(WireModel):
    """A test task as the frontend reads it; `alts_response` stays null until a result."""

    __test__ = False

    id: int
    package_name: str
    package_version: str
    package_release: str | None
    status: int
    revision: int
    alts_response: dict[str, Any] | None
    # Ours: why it fails or waits (ALTS unreachable, no result in time), and its dispatch.
    error: str | None = None
    dispatch_attempts: int = 0
    alts_reply: dict[str, Any] | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None


class OkReply(WireModel):
    ok: bool


class ReportTestResult(WireModel):
    actor: Actor
    test_task_id: DbId
    result: TestResult


class RestartTests(WireModel):
    """Restart the tests of a build (`build_id`) or of one build task (`build_task_id`)."""

    actor: Actor
    build_id: DbId | None = None
    build_task_id: DbId | None = None


REPORT_TEST_RESULT = RpcSpec("tests.report_result", ReportTestResult, OkReply)
RESTART_TESTS = RpcSpec("tests.restart", RestartTests, OkReply)


class TestTasksCreated(Event):
    """A new revision of test tasks for one build task; their log repository is to be made."""

    __test__ = False
    routing_key = "test_task.created"
    build_id: int
    build_task_id: int
    revision: int
    arch: str
    test_task_ids: list[int]


class TestTaskFinished(Event):
    """A test task got its result (or failed without one); its logs are to be filed."""

    __test__ = False
    routing_key = "test_task.finished"
    test_task_id: int
    build_id: int
    build_task_id: int
    revision: int
    arch: str
    status: int
    logs: list[TestLog] = Field(default=[], max_length=LIST_MAX)
