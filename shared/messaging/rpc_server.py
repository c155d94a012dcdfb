"""The responder side of RPC: turn a handler's outcome into a reply envelope."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import BaseMiddleware
from faststream.rabbit.response import RabbitPublishCommand
from faststream.response.publish_type import PublishType
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
    except Exception as exc:
        return _failure(exc)


async def reply_json(outcome: Awaitable[str | None]) -> RpcReply | bytes:
    """As `reply`, for a handler whose result is JSON text already (get_task's stored Task
    body): the envelope is written around it, not parsed and dumped again."""
    try:
        result = await outcome
    except Exception as exc:
        return _failure(exc)
    return b'{"ok":true,"result":%s,"error":null}' % (result or "null").encode()


def _failure(exc: Exception) -> RpcReply:
    if isinstance(exc, AlbsError):
        return RpcReply.failure(exc.status_code, exc.detail)
    if isinstance(exc, OSError | TimeoutError) or database_unavailable(exc):
        log.warning("rpc: dependency unavailable: %s", str(exc).splitlines()[0][:300])
        return RpcReply.failure(503, "A backing service is unavailable; try again shortly.")
    log.exception("rpc: handler failed", exc_info=exc)
    return RpcReply.failure(500, "Internal error; it has been logged.")


class RepliesNotMandatory(BaseMiddleware):
    """RabbitMQ delivers a reply to a direct reply-to address and, when it is published
    `mandatory` (FastStream's default), also returns it as unroutable: a wasted frame, and
    aiormq logs each return at ERROR with the whole body. Replies are published without it
    (a reply nobody waits for any more is dropped either way)."""

    async def publish_scope(self, call_next: Callable[[Any], Awaitable[Any]], cmd: Any) -> Any:
        if isinstance(cmd, RabbitPublishCommand) and cmd.publish_type is PublishType.REPLY:
            cmd.publish_options["mandatory"] = False
        return await call_next(cmd)
