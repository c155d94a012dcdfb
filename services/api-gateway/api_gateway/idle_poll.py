"""get_task's idle poll answered from a read (decision 0008, fifth pass).

Most get_task calls of a farm hear "nothing". Whether anything could be handed out to a
node's arches is a read the gateway may make: the scheduler's claim picks from the same
rows (`RUNNABLE_FOR_ARCHES`) through the same index. Only when something could be handed
out does the call go to the scheduler, which claims it, or answers null if another node
was quicker. A task made runnable just after the read is no different from the poll
arriving a moment earlier: the node gets it at its next poll.

While the queue is busy the check only costs: for `BUSY_SECONDS` after a poll was handed a
task, polls go straight to the scheduler, as before the check existed.
"""

import logging
import time

import asyncpg

from api_gateway.rpc_client import RpcClient
from shared.contracts.build_node import GET_TASK, GetTask
from shared.db.models.builds import RUNNABLE_FOR_ARCHES
from shared.db.session import DbLimits, StatementPool

log = logging.getLogger(__name__)

NO_TASK = b"null"
# The claim's own shape (ORDER BY id LIMIT 1), so the plan is the claim's: the partial
# index of runnable tasks, stopping at the first one of the node's arches.
FIRST_RUNNABLE = f"SELECT id FROM build_tasks WHERE {RUNNABLE_FOR_ARCHES} ORDER BY id LIMIT 1"  # noqa: S608
# A check that cannot be made is no reason to refuse a node: the scheduler decides instead.
CHECK_FAILED = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
BUSY_SECONDS = 0.5


class RunnableCheck:
    """The check on its own `StatementPool`: through the gateway's SQLAlchemy pool (a
    pre-ping per checkout, result objects) it cost the gateway more CPU than a claim's RPC
    (measured, decision 0008)."""

    def __init__(self, database_url: str, size: int, limits: DbLimits | None = None) -> None:
        self._statements = StatementPool(
            database_url,
            size,
            application_name="albs-gateway-idle-check",
            limits=limits or DbLimits(),
        )
        self._busy_until = 0.0

    @property
    def busy(self) -> bool:
        return time.monotonic() < self._busy_until

    def handed_out(self) -> None:
        """A poll was handed a task: more are likely runnable, skip the check a while."""
        self._busy_until = time.monotonic() + BUSY_SECONDS

    async def stop(self) -> None:
        await self._statements.close()

    async def nothing_runnable(self, arches: list[str]) -> bool:
        pool = await self._statements.get()
        async with pool.acquire(timeout=self._statements.limits.pool_timeout) as connection:
            return await connection.fetchval(FIRST_RUNNABLE, arches) is None


async def next_task(check: RunnableCheck, rpc: RpcClient, request: GetTask) -> bytes:
    """The Task body for the node as JSON, or null."""
    if not check.busy:
        try:
            if await check.nothing_runnable(request.supported_arches):
                return NO_TASK
        except CHECK_FAILED as exc:
            log.debug("the idle check failed (%s); the scheduler answers this poll", exc)
    task = await rpc.call_json(GET_TASK, request)
    if task != NO_TASK:
        check.handed_out()
    return task
