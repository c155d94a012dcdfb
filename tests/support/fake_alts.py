"""A fake ALTS (AlmaLinux test system) on loopback, speaking CLIENTS §6.1.

`POST /tasks/schedule` with the bearer token answers 201 `{api_version, success, task_id}`
and records the request; the test's ALTS "worker" (`AltsWorker`) then posts each result to
the schedule's `callback_href` through the gateway, as ALTS's Celery worker does. A schedule
carries the fake's mode at that moment: "answer" (logs uploaded to Pulp), "no_logs" (logs
null: the upload failed) or "silent" (no result ever).
"""

import asyncio
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.http_server import ThreadedServer
from tests.support.pulp_node import upload_artifact

Mode = Literal["answer", "no_logs", "silent"]
API_VERSION = "20210512"


@dataclass(frozen=True)
class Scheduled:
    body: dict[str, Any]
    mode: Mode
    task_id: str


@dataclass
class FakeAlts:
    token: str
    failing_packages: set[str] = field(default_factory=set)
    mode: Mode = "answer"
    port: int | None = None
    scheduled: list[Scheduled] = field(default_factory=list)
    refused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadedServer | None = None

    def start(self) -> str:
        app = Starlette(routes=[Route("/tasks/schedule", self._schedule, methods=["POST"])])
        self._server = ThreadedServer(app, name="fake-alts", port=self.port)
        self.port = self._server.port
        self._server.start()
        return self._server.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def snapshot(self) -> list[Scheduled]:
        with self._lock:
            return list(self.scheduled)

    async def _schedule(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            with self._lock:
                self.refused += 1
            return JSONResponse({"detail": "bad token"}, status_code=401)
        body = await request.json()
        if not isinstance(body, dict) or "callback_href" not in body:
            return JSONResponse(
                {"success": False, "error_description": "no callback"}, status_code=400
            )
        task_id = str(uuid.uuid4())
        with self._lock:
            self.scheduled.append(Scheduled(body, self.mode, task_id))
        return JSONResponse(
            {"api_version": API_VERSION, "success": True, "task_id": task_id}, status_code=201
        )


@dataclass
class AltsWorker:
    """Posts the result of every answerable schedule once, through the gateway."""

    alts: FakeAlts
    gateway: httpx.AsyncClient
    token: str
    pulp: httpx.AsyncClient
    log_dir: Path
    posted: dict[str, int] = field(default_factory=dict)  # callback -> HTTP status

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for item in self.alts.snapshot():
                href = item.body["callback_href"]
                if item.mode != "silent" and href not in self.posted:
                    self.posted[href] = await self.post_result(item)
            await asyncio.sleep(0.1)

    def result_of(self, item: Scheduled) -> dict[str, Any]:
        passed = item.body["package_name"] not in self.alts.failing_packages
        return {
            "initialize_terraform": {"success": True},
            "start_environment": {"success": True},
            "install_package": {"success": True},
            "tests": {"package_integrity_tests": {"success": passed, "output": "TAP version 13"}},
            "stop_environment": {"success": True},
        }

    async def post_result(self, item: Scheduled) -> int:
        result = self.result_of(item)
        if item.mode == "no_logs":
            result["logs"] = None
        else:
            result["logs"] = [await self._log(item, "install_package")]
        answer = await self.gateway.post(
            item.body["callback_href"],
            json={"api_version": API_VERSION, "result": result},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        return answer.status_code

    async def _log(self, item: Scheduled, stage: str) -> dict[str, str]:
        name = f"{stage}_{item.task_id}.log"
        path = self.log_dir / name
        path.write_text(f"{stage} of {item.body['package_name']}: ok\n")
        href = await upload_artifact(self.pulp, path)
        return {"name": name, "href": href, "type": "test_log"}
