"""A fake Gitea for tests: the three list endpoints the refresh reads, on 127.0.0.1.

It speaks Gitea's documented API (https://gitea.com/api/swagger: `GET /orgs/{org}/repos`,
`GET /repos/{owner}/{repo}/tags`, `GET /repos/{owner}/{repo}/branches`): `limit` capped
at 50 like Gitea's default MAX_RESPONSE_ITEMS, 1-based `page`, an `X-Total-Count` header,
404 `{"message": ...}` for what does not exist. It is not Gitea: only what the refresh
needs, with switches for failures.
"""

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.http_server import ThreadedServer
from tests.support.processes import free_port

MAX_RESPONSE_ITEMS = 50
EPOCH = datetime(2021, 3, 1, 10, 0, tzinfo=UTC)


@dataclass
class FakeRepo:
    org: str
    name: str
    tags: list[str] = field(default_factory=list)
    branches: list[str] = field(default_factory=list)
    updated_at: datetime = EPOCH

    @property
    def full_name(self) -> str:
        return f"{self.org}/{self.name}"


@dataclass
class Failure:
    status: int
    times: int | None


class FakeGitea:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.max_in_flight = 0
        self.delay_seconds = 0.0
        self.total_header = True  # older Gitea versions send no X-Total-Count on some lists
        self._in_flight = 0
        self._repos: dict[str, FakeRepo] = {}
        self._failing: dict[str, Failure] = {}
        self._lock = threading.Lock()
        self._port = free_port()
        self._server: ThreadedServer | None = None
        self._clock = EPOCH

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/api/v1/"

    def clone_url(self, full_name: str) -> str:
        return f"http://127.0.0.1:{self._port}/{full_name}.git"

    # -- the switches tests use -------------------------------------------------

    def add_repo(
        self,
        org: str,
        name: str,
        *,
        tags: list[str] | None = None,
        branches: list[str] | None = None,
    ) -> FakeRepo:
        repo = FakeRepo(org, name, list(tags or []), list(branches or ["main"]), self._tick())
        with self._lock:
            self._repos[repo.full_name] = repo
        return repo

    def push_tag(self, full_name: str, tag: str) -> None:
        with self._lock:
            repo = self._repos[full_name]
            repo.tags.append(tag)
            repo.updated_at = self._tick()

    def tags_of(self, full_name: str) -> list[str]:
        """What `GET /repos/{full_name}/tags` would list right now."""
        with self._lock:
            return list(self._repos[full_name].tags)

    def delete_tag(self, full_name: str, tag: str) -> None:
        with self._lock:
            repo = self._repos[full_name]
            repo.tags.remove(tag)
            repo.updated_at = self._tick()

    def remove_repo(self, full_name: str) -> None:
        with self._lock:
            del self._repos[full_name]

    def fail(self, path_part: str, status: int = 500, times: int | None = None) -> None:
        """Requests whose path contains `path_part` fail with `status` (`times` times, or always)."""
        with self._lock:
            self._failing[path_part] = Failure(status, times)

    def reset(self) -> None:
        with self._lock:
            self._repos.clear()
            self._failing.clear()
            self.requests.clear()
            self.max_in_flight = 0
            self.delay_seconds = 0.0
            self.total_header = True

    def _tick(self) -> datetime:
        self._clock += timedelta(minutes=1)
        return self._clock

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        self._server = ThreadedServer(self._app(), name="fake-gitea", port=self._port)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    # -- the HTTP side --------------------------------------------------------------

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/orgs/{org}/repos", self._org_repos),
                Route("/api/v1/repos/{owner}/{repo}/tags", self._tags),
                Route("/api/v1/repos/{owner}/{repo}/branches", self._branches),
            ]
        )

    async def _serve(self, request: Request, items: Any) -> Response:
        path = request.url.path
        with self._lock:
            self.requests.append(f"{path}?{request.url.query}")
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            failure = self._planned_failure(path)
        try:
            if self.delay_seconds:
                await asyncio.sleep(self.delay_seconds)
            if failure is not None:
                return JSONResponse({"message": "internal error", "url": self.api_url}, failure)
            if items is None:
                return JSONResponse({"message": "The target couldn't be found.", "errors": []}, 404)
            return _page(request, items(), total_header=self.total_header)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _planned_failure(self, path: str) -> int | None:
        for part, failure in list(self._failing.items()):
            if part in path:
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        del self._failing[part]
                return failure.status
        return None

    async def _org_repos(self, request: Request) -> Response:
        org = request.path_params["org"]
        with self._lock:
            repos = [r for r in self._repos.values() if r.org == org]
        known = repos or org in {"rpms", "modules"}
        return await self._serve(
            request, (lambda: [self._repo_payload(r) for r in repos]) if known else None
        )

    async def _tags(self, request: Request) -> Response:
        repo = self._repo(request)
        return await self._serve(
            request, (lambda: [_tag_payload(repo, t) for t in repo.tags]) if repo else None
        )

    async def _branches(self, request: Request) -> Response:
        repo = self._repo(request)
        return await self._serve(
            request, (lambda: [_branch_payload(repo, b) for b in repo.branches]) if repo else None
        )

    def _repo(self, request: Request) -> FakeRepo | None:
        with self._lock:
            return self._repos.get(f"{request.path_params['owner']}/{request.path_params['repo']}")

    def _repo_payload(self, repo: FakeRepo) -> dict[str, Any]:
        base = f"http://127.0.0.1:{self._port}/{repo.full_name}"
        return {
            "id": abs(hash(repo.full_name)) % 100000,
            "owner": {
                "id": 3,
                "login": repo.org,
                "full_name": "",
                "email": "",
                "username": repo.org,
            },
            "name": repo.name,
            "full_name": repo.full_name,
            "description": "",
            "empty": False,
            "private": False,
            "fork": False,
            "html_url": base,
            "ssh_url": f"gitea@127.0.0.1:{repo.full_name}.git",
            "clone_url": f"{base}.git",
            "website": "",
            "stars_count": 0,
            "forks_count": 0,
            "watchers_count": 0,
            "open_issues_count": 0,
            "default_branch": repo.branches[0] if repo.branches else "main",
            "created_at": EPOCH.isoformat(),
            "updated_at": repo.updated_at.isoformat(),
        }


def _page(request: Request, items: list[Any], *, total_header: bool) -> Response:
    limit = min(int(request.query_params.get("limit") or MAX_RESPONSE_ITEMS), MAX_RESPONSE_ITEMS)
    page = max(int(request.query_params.get("page") or 1), 1)
    start = (page - 1) * limit
    headers = {"X-Total-Count": str(len(items))} if total_header else {}
    return JSONResponse(items[start : start + limit], headers=headers)


def _commit(repo: FakeRepo, ref: str) -> dict[str, Any]:
    sha = f"{abs(hash((repo.full_name, ref))):040x}"[-40:]
    return {"sha": sha, "url": f"http://127.0.0.1/{repo.full_name}/commit/{sha}"}


def _tag_payload(repo: FakeRepo, tag: str) -> dict[str, Any]:
    commit = _commit(repo, tag)
    return {"name": tag, "id": commit["sha"], "message": tag, "commit": commit}


def _branch_payload(repo: FakeRepo, branch: str) -> dict[str, Any]:
    commit = _commit(repo, branch)
    return {
        "name": branch,
        "commit": {"id": commit["sha"], "message": "update", "url": commit["url"]},
        "protected": False,
    }
