"""Business errors from any layer become `{"detail": ...}` with their own status."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.errors import AlbsError


async def albs_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AlbsError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AlbsError, albs_error_handler)
