"""A stand-in for `POST /api/v1/builds/` on 127.0.0.1 that records what it receives.

It checks the body against the real contract (BuildCreate) so an invalid payload, like the
one the original listener sent, gets the 422 the real API answers.
"""

import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.contracts.builds import BuildCreate
from tests.support.processes import free_port


@dataclass(frozen=True)
class ReceivedBuild:
    authorization: str
    body: dict[str, Any]
    build_id: int


class BuildReceiver:
    def __init__(self) -> None:
        self.received: list[ReceivedBuild] = []
        self.refused: list[dict[str, Any]] = []
        self._failures: list[int] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._port = free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def fail_next(self, *statuses: int) -> None:
        """The next requests get these statuses, one each, before answers become normal."""
        with self._lock:
            self._failures.extend(statuses)

    def start(self) -> None:
        app = Starlette(routes=[Route("/api/v1/builds/", self._create, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self._port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="build-receiver", daemon=True)
        self._thread.start()
        for _ in range(200):
            if self._server.started:
                return
            time.sleep(0.05)
        raise RuntimeError("the build receiver did not start")

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)

    async def _create(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            planned = self._failures.pop(0) if self._failures else None
        if planned is not None:
            return JSONResponse({"detail": "planned failure"}, planned)
        try:
            BuildCreate.model_validate(body)
        except ValidationError as exc:
            with self._lock:
                self.refused.append(body)
            return JSONResponse({"detail": exc.errors(include_url=False)}, 422)
        build_id = next(self._ids)
        with self._lock:
            self.received.append(
                ReceivedBuild(request.headers.get("authorization", ""), body, build_id)
            )
        return JSONResponse({"id": build_id, "tasks": [], "linked_builds": []}, 201)
