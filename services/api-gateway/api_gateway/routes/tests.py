"""/api/v1/tests: ALTS's results, the frontend's reads and restarts (REFERENCE §3 rows 21-25).

The literal `latest` route comes before `{revision}`, as in the reference.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path

from api_gateway.deps import RpcDep, SessionDep
from api_gateway.params import BuildId
from api_gateway.policy import AltsService, People
from api_gateway.responses import BODY, COMMON, errors
from shared.contracts.bounds import INT32_MAX, id_in_range
from shared.contracts.test_tasks import (
    REPORT_TEST_RESULT,
    RESTART_TESTS,
    OkReply,
    ReportTestResult,
    RestartTests,
    TestResult,
    TestTaskOut,
)
from shared.db.queries import tests as queries
from shared.errors import NotFound

router = APIRouter(prefix="/api/v1/tests", tags=["tests"], responses=errors(*COMMON))


async def _test_task_id(test_task_id: Annotated[int, Path()]) -> int:
    if not id_in_range(test_task_id):
        raise NotFound(f"Test task with id={test_task_id} is not found")
    return test_task_id


async def _build_task_id(build_task_id: Annotated[int, Path()]) -> int:
    if not id_in_range(build_task_id):
        raise NotFound(f"Build task with id={build_task_id} is not found")
    return build_task_id


TestTaskId = Annotated[int, Depends(_test_task_id)]
BuildTaskId = Annotated[int, Depends(_build_task_id)]
Revision = Annotated[int, Path(ge=0, le=INT32_MAX, description="0 means the latest")]


@router.post("/{test_task_id}/result/", response_model=OkReply, responses=errors(404, *BODY))
async def report_result(
    test_task_id: TestTaskId, body: TestResult, actor: AltsService, rpc: RpcDep
) -> OkReply | None:
    command = ReportTestResult(actor=actor, test_task_id=test_task_id, result=body)
    return await rpc.call(REPORT_TEST_RESULT, command)


@router.put("/build/{build_id}/restart", response_model=OkReply, responses=errors(404, 409))
async def restart_build_tests(build_id: BuildId, actor: People, rpc: RpcDep) -> OkReply | None:
    return await rpc.call(RESTART_TESTS, RestartTests(actor=actor, build_id=build_id))


@router.put(
    "/build_task/{build_task_id}/restart", response_model=OkReply, responses=errors(404, 409)
)
async def restart_task_tests(
    build_task_id: BuildTaskId, actor: People, rpc: RpcDep
) -> OkReply | None:
    return await rpc.call(RESTART_TESTS, RestartTests(actor=actor, build_task_id=build_task_id))


@router.get("/{build_task_id}/latest", response_model=list[TestTaskOut], responses=errors(404))
async def latest_tests(
    build_task_id: BuildTaskId, _: People, session: SessionDep
) -> list[TestTaskOut]:
    return await _tests(session, build_task_id, queries.LATEST)


@router.get("/{build_task_id}/{revision}", response_model=list[TestTaskOut], responses=errors(404))
async def tests_of_revision(
    build_task_id: BuildTaskId, revision: Revision, _: People, session: SessionDep
) -> list[TestTaskOut]:
    return await _tests(session, build_task_id, revision)


async def _tests(session: SessionDep, build_task_id: int, revision: int) -> list[TestTaskOut]:
    found = await queries.tests_of(session, build_task_id, revision)
    if found is None:
        raise HTTPException(404, f"Build task with id={build_task_id} is not found")
    return found
