"""A small HTTP server for a process's /metrics and /healthz, on the event loop.

Probes and Prometheus need two GET routes; a web framework would be more than the whole
job. Requests are read with a size limit and a timeout; one answer per connection.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared import metrics

log = logging.getLogger(__name__)

# (ready, what each check found): 200 when ready, else 503.
HealthCheck = Callable[[], Awaitable[tuple[bool, dict[str, str]]]]
# Reads gauges from the database before each scrape; one at a time, bounded in time.
Refresh = Callable[[], Awaitable[None]]
REFRESH_TIMEOUT = 5.0
# Scrapes closer together than this reuse the last values: the task counts read every
# unfinished task, so scrapers (several Prometheus, a curl loop) must not multiply it.
MIN_REFRESH_SECONDS = 5.0
MAX_REQUEST_BYTES = 8192
READ_TIMEOUT = 5.0


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


class OpsServer:
    def __init__(
        self, host: str, port: int, health: HealthCheck, refresh: Refresh | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._health = health
        self._refresh = refresh
        self._refreshing = asyncio.Lock()
        self._refreshed_at = float("-inf")
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (the one the OS chose when configured with 0)."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=MAX_REQUEST_BYTES
        )
        log.info("ops endpoints on http://%s:%d (/metrics, /healthz)", self._host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = b""
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            request_line = head.split(b"\r\n", 1)[0]
            answer = await self._answer(request_line)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            answer = Answer(400, "text/plain", b"bad request\n")
        except ConnectionError:
            return
        body = b"" if request_line.startswith(b"HEAD ") else answer.body
        writer.write(
            f"HTTP/1.1 {answer.status} {_REASONS[answer.status]}\r\n"
            f"Content-Type: {answer.content_type}\r\n"
            f"Content-Length: {len(answer.body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _answer(self, request_line: bytes) -> Answer:
        parts = request_line.decode("latin-1").split()
        if len(parts) != 3 or parts[0] not in ("GET", "HEAD"):
            return Answer(405, "text/plain", b"only GET\n")
        path = parts[1].split("?", 1)[0]
        if path == "/metrics":
            await self._refresh_gauges()
            return Answer(200, metrics.CONTENT_TYPE_LATEST, metrics.render())
        if path == "/healthz":
            ready, checks = await self._health()
            body = json.dumps({"status": "ready" if ready else "not ready", **checks})
            return Answer(200 if ready else 503, "application/json", body.encode())
        return Answer(404, "text/plain", b"not found\n")

    async def _refresh_gauges(self) -> None:
        """Concurrent scrapes share one refresh; a failed one leaves the last values."""
        if self._refresh is None or self._refreshing.locked():
            return
        if time.monotonic() - self._refreshed_at < MIN_REFRESH_SECONDS:
            return
        async with self._refreshing:
            self._refreshed_at = time.monotonic()
            try:
                await asyncio.wait_for(self._refresh(), REFRESH_TIMEOUT)
            except Exception as exc:
                log.warning("metrics: cannot refresh the gauges: %r", exc)


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}
