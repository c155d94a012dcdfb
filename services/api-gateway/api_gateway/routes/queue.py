"""/api/v1/queue: the build queue as an operator watches it (administrators only)."""

from fastapi import APIRouter

from api_gateway.deps import SessionDep
from api_gateway.policy import Admin
from api_gateway.responses import COMMON, errors
from shared.contracts.queue import QueueOut
from shared.db.queries.queue import queue_summary

router = APIRouter(prefix="/api/v1/queue", tags=["queue"], responses=errors(*COMMON))


@router.get("/", response_model=QueueOut)
async def get_queue(_: Admin, session: SessionDep) -> QueueOut:
    """Idle, runnable and started tasks per platform and arch; the nodes at work."""
    return await queue_summary(session)
