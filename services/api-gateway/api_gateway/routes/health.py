"""GET /healthz: is each backing server reachable? For load balancers; carries no data."""

import asyncio
from collections.abc import Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 2.0


async def _check(probe: Coroutine[Any, Any, None]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


async def _postgresql(request: Request) -> None:
    async with request.app.state.sessions() as session:
        await session.execute(text("SELECT 1"))


async def _redis(request: Request) -> None:
    await request.app.state.redis.ping()


async def _rabbitmq(request: Request) -> None:
    if not request.app.state.rpc.connected:
        raise ConnectionError("not connected")


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    names = ("postgresql", "rabbitmq", "redis")
    probes = (_postgresql(request), _rabbitmq(request), _redis(request))
    states = dict(zip(names, await asyncio.gather(*(_check(p) for p in probes)), strict=True))
    healthy = all(state == "ok" for state in states.values())
    body = {"status": "ok" if healthy else "degraded", **states}
    return JSONResponse(body, status_code=200 if healthy else 503)
