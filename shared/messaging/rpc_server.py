"""The responder side of RPC: turn a handler's outcome into a reply envelope."""

import logging
from collections.abc import Awaitable
from typing import Any

from pydantic import BaseModel

from shared.contracts.messages import RpcReply
from shared.db.failures import database_unavailable
from shared.errors import AlbsError

log = logging.getLogger(__name__)


async def reply(
    outcome: Awaitable[BaseModel | list[BaseModel] | dict[str, Any] | None],
) -> RpcReply:
    """Await the handler; business errors become error replies instead of silence."""
    try:
        return RpcReply.success(await outcome)
    except AlbsError as exc:
        return RpcReply.failure(exc.status_code, exc.detail)
    except Exception as exc:
        if isinstance(exc, OSError | TimeoutError) or database_unavailable(exc):
            log.warning("rpc: dependency unavailable: %s", str(exc).splitlines()[0][:300])
            return RpcReply.failure(503, "A backing service is unavailable; try again shortly.")
        log.exception("rpc: handler failed")
        return RpcReply.failure(500, "Internal error; it has been logged.")
