"""Metrics, correlation id and one log line for every message a FastStream service handles.

A broker middleware, so every subscriber gets it without an edit: the handler label is the
queue name without the deployment's prefix (`rpc.build.create`, `artifacts.build.created`),
one queue per handler. The outcome is `ok`, `rejected` (an RPC answered with a 4xx),
`error` (raised, or an RPC answered 5xx) or `dead_lettered` (the poison middleware, inside
this one, sent it to the dead-letter queue).
"""

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from faststream import BaseMiddleware
from faststream.message import StreamMessage

from shared import correlation, metrics
from shared.contracts.build_node import GET_TASK, NodePinged
from shared.contracts.messages import RpcReply

log = logging.getLogger("albs.messages")

# Set by the poison middleware when it dead-letters the message being handled.
dead_lettered: ContextVar[bool] = ContextVar("dead_lettered", default=False)

# Sent by every node every few seconds: their lines would drown a build's story. Still
# counted, and logged at DEBUG.
QUIET = frozenset({f"rpc.{GET_TASK.name}", NodePinged.routing_key})


def outcome_of(result: Any) -> str:
    if dead_lettered.get():
        return "dead_lettered"
    if isinstance(result, RpcReply) and not result.ok and result.error is not None:
        return "rejected" if result.error.status < 500 else "error"
    return "ok"


def handler_label(queue: str, prefix: str) -> str:
    return queue.removeprefix(f"{prefix}.")


def is_quiet(handler: str) -> bool:
    return handler in QUIET or handler.endswith(tuple(f".{name}" for name in QUIET))


def observe_middleware(prefix: str) -> type[BaseMiddleware]:
    class ObserveMiddleware(BaseMiddleware):
        async def consume_scope(
            self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
        ) -> Any:
            subscriber = self.context.get_local("handler_")
            queue = getattr(getattr(subscriber, "queue", None), "name", "") or "unknown"
            handler = handler_label(queue, prefix)
            token = correlation.bind(correlation.from_headers(msg.headers))
            flag = dead_lettered.set(False)
            started = time.perf_counter()
            outcome = "error"
            try:
                result = await call_next(msg)
                outcome = outcome_of(result)
                return result
            finally:
                elapsed = time.perf_counter() - started
                metrics.MESSAGES_HANDLED.labels(handler, outcome).inc()
                metrics.MESSAGE_SECONDS.labels(handler).observe(elapsed)
                level = logging.WARNING if outcome in ("error", "dead_lettered") else logging.INFO
                if level == logging.INFO and is_quiet(handler):
                    level = logging.DEBUG
                log.log(level, "handled %s: %s in %.0f ms", handler, outcome, elapsed * 1000)
                dead_lettered.reset(flag)
                correlation.unbind(token)

    return ObserveMiddleware
