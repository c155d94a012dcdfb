"""GET /healthz: can the gateway reach its servers, and does someone serve each RPC?

`ok` (200): everything reachable and every RPC served. `degraded` (200): reads work but
some RPC has no consumer (its service is down), so those commands answer 503 at once.
`down` (503): PostgreSQL, RabbitMQ or Redis is unreachable. For load balancers; no data.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from shared.contracts.topology import Topology
from shared.messaging.dead_letters import dead_letter_count

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


def rpc_consumers(request: Request) -> dict[str, int | None]:
    consumers: dict[str, int | None] = request.app.state.rpc.consumers()
    return consumers


async def dead_letters(request: Request) -> dict[str, int | str]:
    """How many messages wait in the dead-letter queue (`albs dead-letters list` shows them).
    Informational: dead letters need an operator, they do not make this gateway unhealthy."""
    rpc = request.app.state.rpc
    try:
        if rpc.connection is None:
            raise ConnectionError("not connected")
        count = await asyncio.wait_for(
            dead_letter_count(rpc.connection, Topology(request.app.state.settings.amqp_prefix)),
            CHECK_TIMEOUT,
        )
    except Exception as exc:
        return {"dead_letters": f"error: {type(exc).__name__}"}
    return {"dead_letters": count}


@router.get(
    "/healthz",
    responses={503: {"description": "PostgreSQL, RabbitMQ or Redis is unreachable (status down)"}},
)
async def healthz(request: Request) -> JSONResponse:
    names = ("postgresql", "rabbitmq", "redis")
    probes = (_postgresql(request), _rabbitmq(request), _redis(request))
    states = dict(zip(names, await asyncio.gather(*(_check(p) for p in probes)), strict=True))
    consumers = rpc_consumers(request)
    if any(state != "ok" for state in states.values()):
        status = "down"
    elif any(not count for count in consumers.values()):
        status = "degraded"
    else:
        status = "ok"
    body = {
        "status": status,
        **states,
        "rpc_consumers": consumers,
        **await dead_letters(request),
    }
    return JSONResponse(body, status_code=503 if status == "down" else 200)
