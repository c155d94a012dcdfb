"""Request ids, HTTP metrics and the access log; /metrics and /asyncapi.

The middleware is plain ASGI (no per-request task or body copy): it takes the caller's
`X-Request-ID` when well formed or makes one, binds it for the logs, RPCs and events of
the request, returns it in the response, and times the request by route template.
"""

import asyncio
import logging
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import correlation, metrics
from shared.contracts.topology import Topology
from shared.messaging.asyncapi import asyncapi_html, asyncapi_json
from shared.messaging.dead_letters import dead_letter_count

log = logging.getLogger("api_gateway.access")

# Nodes call these every few seconds: counted, but their access lines are DEBUG.
QUIET_SUFFIXES = ("/get_task", "/ping")
SCRAPE_TIMEOUT = 2.0


class ObserveRequests:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = correlation.accept(Headers(scope=scope).get(correlation.HTTP_HEADER))
        token = correlation.bind(request_id)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[correlation.HTTP_HEADER] = request_id
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            metrics.HTTP_REQUEST_SECONDS.labels(route, method, str(status)).observe(elapsed)
            log.log(
                access_level(method, route, status),
                "%s %s -> %d in %.0f ms",
                method,
                route,
                status,
                elapsed * 1000,
            )
            correlation.unbind(token)


def access_level(method: str, route: str, status: int) -> int:
    if status >= 500:
        return logging.WARNING
    if method in ("GET", "HEAD", "OPTIONS") or route.endswith(QUIET_SUFFIXES):
        return logging.DEBUG
    return logging.INFO


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    await _count_dead_letters(request)
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)


async def _count_dead_letters(request: Request) -> None:
    rpc = request.app.state.rpc
    if rpc.connection is None:
        return
    try:
        topology = Topology(request.app.state.settings.amqp_prefix)
        count = await asyncio.wait_for(dead_letter_count(rpc.connection, topology), SCRAPE_TIMEOUT)
    except Exception as exc:  # the gauge keeps its last value; /healthz says what is wrong
        log.debug("metrics: cannot count dead letters: %r", exc)
        return
    metrics.DEAD_LETTERS.set(count)


@router.get("/asyncapi.json")
async def asyncapi_document(request: Request) -> Response:
    document = asyncapi_json(request.app.state.settings.amqp_prefix)
    return Response(document, media_type="application/json")


@router.get("/asyncapi")
async def asyncapi_page(request: Request) -> HTMLResponse:
    return HTMLResponse(asyncapi_html(request.app.state.settings.amqp_prefix))
