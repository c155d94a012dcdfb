"""Every failure becomes a JSON answer a person can act on, and the connection stays usable.

- Business errors (AlbsError) carry their own status.
- Invalid requests answer 422 with where and what, never echoing the input back (it may
  be huge, or not even encodable: a lone surrogate, NaN).
- PostgreSQL, Redis or RabbitMQ unreachable or too slow answer 503.
- Anything else answers a JSON 500 with an error id that is also in the log. It is caught
  in a middleware, so uvicorn never sees an exception and keeps the connection open.
"""

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aio_pika.exceptions import AMQPError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db.failures import database_unavailable
from shared.errors import AlbsError

log = logging.getLogger("api_gateway.errors")

UNAVAILABLE = {
    "postgresql": "The database is unavailable or overloaded; try again shortly.",
    "redis": "The project cache (Redis) is unavailable; try again shortly.",
    "rabbitmq": "The message broker is unavailable; try again shortly.",
    "backend": "A backing server is unreachable or too slow; try again shortly.",
}


async def albs_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AlbsError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


def validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's error list without `input` and `ctx`: where, what, and the error's type."""
    return [
        {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")), "type": error["type"]}
        for error in errors
    ]


async def validation_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": validation_details(exc.errors())}, status_code=422)


Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def _unavailable(server: str) -> Handler:
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        log.warning("%s unavailable: %s: %s", server, type(exc).__name__, exc)
        return JSONResponse({"detail": UNAVAILABLE[server]}, status_code=503)

    return handler


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Connection, capacity and timeout failures are 503; any other database error is our bug."""
    assert isinstance(exc, DBAPIError)
    if database_unavailable(exc):
        return await _unavailable("postgresql")(request, exc)
    return internal_error(exc)


def internal_error(exc: BaseException) -> JSONResponse:
    error_id = uuid.uuid4().hex[:12]
    log.error("unexpected error %s", error_id, exc_info=exc)
    return JSONResponse(
        {"detail": f"Internal error {error_id}; it has been logged.", "error_id": error_id},
        status_code=500,
    )


class CatchAll:
    """The last line: an exception that escaped every handler still gets a JSON 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late to answer; the outer layers know what it means
                raise
            await internal_error(exc)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AlbsError, albs_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(DBAPIError, database_error_handler)
    app.add_exception_handler(PoolTimeout, _unavailable("postgresql"))
    app.add_exception_handler(OSError, _unavailable("backend"))
    app.add_exception_handler(TimeoutError, _unavailable("backend"))
    app.add_exception_handler(RedisError, _unavailable("redis"))
    app.add_exception_handler(AMQPError, _unavailable("rabbitmq"))
    app.add_middleware(CatchAll)
