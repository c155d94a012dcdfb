"""The correlation id: one per HTTP request, carried by every RPC and event it causes.

The gateway takes a well-formed `X-Request-ID` or makes one; RPCs and published events
carry it in the `x-correlation-id` header, outbox rows in their `correlation_id` column,
and every log line of the work it causes names it.
"""

import re
import uuid
from contextvars import ContextVar, Token
from typing import Any

HTTP_HEADER = "X-Request-ID"
MESSAGE_HEADER = "x-correlation-id"
MAX_LENGTH = 64
_WELL_FORMED = re.compile(rf"[A-Za-z0-9._:-]{{8,{MAX_LENGTH}}}")

_current: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def new_id() -> str:
    return uuid.uuid4().hex


def accept(value: str | None) -> str:
    """A caller's id if it is well formed (so it cannot forge log lines), else a fresh one."""
    if value is not None and _WELL_FORMED.fullmatch(value):
        return value
    return new_id()


def current() -> str | None:
    return _current.get()


def bind(correlation_id: str | None) -> Token[str | None]:
    """Set the id of the work this task does from now on; `unbind` restores the previous."""
    return _current.set(correlation_id)


def unbind(token: Token[str | None]) -> None:
    _current.reset(token)


def from_headers(headers: object) -> str | None:
    """The id a message carries, if well formed."""
    value = headers.get(MESSAGE_HEADER) if isinstance(headers, dict) else None
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str) and _WELL_FORMED.fullmatch(value):
        return value
    return None


def headers() -> dict[str, Any]:
    """Headers to put on an outgoing message: the current id, if any."""
    correlation_id = _current.get()
    return {MESSAGE_HEADER: correlation_id} if correlation_id else {}
