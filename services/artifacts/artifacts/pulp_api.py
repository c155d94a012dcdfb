"""The HTTP side of the Pulp client: session, timeouts, retries, bounded task polling.

Every HTTP call has a timeout and every Pulp task is polled with a bound (REFERENCE §11.28).
A step (one idempotent unit of work) that met a connection error, a timeout, a 5xx or a
429 is run again after a jittered exponential backoff (tenacity), until an attempt count or
a deadline; anything else fails it for good.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from artifacts.pulp_tasks import TaskFailed, TaskWatcher
from shared import metrics
from shared.retry import retrying

log = logging.getLogger(__name__)

API = "/pulp/api/v3"
LOGIN = f"{API}/login/"
TASKS = f"{API}/tasks/"
TASK_FIELDS = "pulp_href,state,name,error,created_resources"
# gunicorn (Pulp's API server) drops idle connections after 2 s; reusing one just then is
# a ReadError, so idle connections are let go sooner.
CONNECTION_LIMITS = httpx.Limits(max_connections=20, keepalive_expiry=1.0)
T = TypeVar("T")
Json = dict[str, Any]


@dataclass
class Tally:
    """Pulp HTTP calls and Pulp tasks waited for, by one unit of work (a report, a build);
    `task_seconds` adds up the waits of all its tasks (overlapping waits count each)."""

    calls: int = 0
    tasks: int = 0
    task_seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.calls} Pulp calls, {self.tasks} Pulp tasks, {self.task_seconds:.2f} s on tasks"
        )


_tally: ContextVar[Tally | None] = ContextVar("pulp_tally", default=None)


@contextmanager
def tally() -> Iterator[Tally]:
    """Count the Pulp calls made inside the block, including by tasks it starts."""
    counted = Tally()
    token = _tally.set(counted)
    try:
        yield counted
    finally:
        _tally.reset(token)


def _count(*, calls: int = 0, tasks: int = 0, task_seconds: float = 0.0) -> None:
    counted = _tally.get()
    if counted is not None:
        counted.calls += calls
        counted.tasks += tasks
        counted.task_seconds += task_seconds


class PulpError(Exception):
    """A Pulp step failed for good; the message says which step and why, for people."""


class Transient(Exception):
    """A connection error, a timeout, a 5xx or a 429: worth trying the step again."""


@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff, bounded in attempts and in time (whichever ends first)."""

    retries: int = 50
    backoff_seconds: float = 0.5
    max_delay_seconds: float = 10.0
    deadline_seconds: float = 300.0


@dataclass(frozen=True)
class TaskPolicy:
    poll_seconds: float = 0.3
    timeout_seconds: float = 600.0


def task_failure(what: str, error: Json) -> Exception:
    """A failed task's error; a worker process that died (Pulp short of memory or database
    connections) is no fault of the request, so the step is worth running again."""
    reason = error.get("description") or error.get("reason") or "no reason given"
    if "died unexpectedly" in reason:
        return Transient(f"{what}: {reason}")
    return PulpError(f"{what}: {reason}")


def _session_rejected(response: httpx.Response) -> bool:
    """Our session expired or was dropped (a 403 for a real permission problem is not this)."""
    if response.status_code == 401:
        return True
    return response.status_code == 403 and (
        "CSRF" in response.text or "credentials were not provided" in response.text
    )


def _label(task: Json, task_href: str) -> str:
    return f"{str(task.get('name') or '?').rsplit('.', 1)[-1]} ({task_href})"


def _detail(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] or response.reason_phrase


def _outcome(status: int) -> str:
    return "ok" if status < 400 else f"http_{status // 100}xx"


class PulpApi:
    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        *,
        timeout_seconds: float = 30.0,
        retry: RetryPolicy | None = None,
        tasks: TaskPolicy | None = None,
        concurrency: int = 4,
    ) -> None:
        self.url = url.rstrip("/")
        self._auth = httpx.BasicAuth(user, password)
        self._timeout = timeout_seconds
        self._retry = retry or RetryPolicy()
        self._tasks = tasks or TaskPolicy()
        self._client: httpx.AsyncClient | None = None
        # Bounds the HTTP requests in flight, not the steps: a step waiting for its Pulp task
        # holds no slot, so a backlog's tasks all reach Pulp's queue.
        self._slots = asyncio.Semaphore(concurrency)
        self._watcher = TaskWatcher(self._tasks_named, self._tasks.poll_seconds)
        self._login_lock = asyncio.Lock()
        self._csrf: str | None = None
        self._basic_only = False

    async def start(self) -> None:
        """Open the connection pool (a call before start() opens it too)."""
        self._http()

    async def close(self) -> None:
        await self._watcher.close()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def get(self, href: str, **params: Any) -> Json:
        """One GET of an API path, as a step (for callers that only look)."""
        return await self._step(f"reading {href}", lambda: self._json("GET", href, params=params))

    # Tasks

    async def wait_task(self, task_href: str) -> Json:
        """Wait for the task (the watcher polls all of them together); a failed task or the
        time bound is an error."""
        started = time.perf_counter()
        try:
            return await self._poll_task(task_href)
        finally:
            _count(tasks=1, task_seconds=time.perf_counter() - started)

    async def _poll_task(self, task_href: str) -> Json:
        timeout = self._tasks.timeout_seconds
        try:
            return await self._watcher.wait(task_href, timeout)
        except TaskFailed as failed:
            task = failed.task
            raise task_failure(
                f"Pulp task {_label(task, task_href)} {task['state']}", task.get("error") or {}
            ) from None
        except TimeoutError:
            task = await self._last_seen(task_href)
            raise PulpError(
                f"Pulp task {_label(task, task_href)} did not finish within {timeout:g} s "
                f"(last state: {task.get('state', 'unknown')})"
            ) from None

    async def _last_seen(self, task_href: str) -> Json:
        """The task as Pulp sees it now, for an error message; {} if Pulp does not answer."""
        try:
            return await self._json("GET", task_href)
        except (Transient, PulpError):
            return {}

    async def _tasks_named(self, hrefs: list[str]) -> list[Json]:
        """The tasks with these hrefs, in one request (the watcher's poll)."""
        params = {"pulp_href__in": ",".join(hrefs), "fields": TASK_FIELDS, "limit": len(hrefs)}
        return list((await self._json("GET", TASKS, params=params))["results"])

    # HTTP

    async def _step(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """Run one idempotent step, again after a transient failure (see RetryPolicy)."""
        tries = 0

        async def once() -> T:
            nonlocal tries
            tries += 1
            return await step()

        policy = self._retry
        try:
            return await retrying(
                once,
                what=what,
                retry_on=lambda exc: isinstance(exc, Transient),
                attempts=policy.retries + 1,
                deadline_seconds=policy.deadline_seconds,
                first_wait=policy.backoff_seconds,
                max_wait=policy.max_delay_seconds,
            )
        except Transient as exc:
            raise PulpError(f"{what}: Pulp is unavailable after {tries} attempts ({exc})") from exc
        except PulpError as exc:
            raise PulpError(f"{what}: {exc}") from exc

    async def _call(
        self, method: str, path: str, *, json: Json | None = None, params: Json | None = None
    ) -> httpx.Response:
        client = self._http()
        csrf = await self._session(renew_after=None)
        try:
            response = await self._send(client, method, path, csrf, json=json, params=params)
            if csrf is not None and _session_rejected(response):
                csrf = await self._session(renew_after=csrf)
                response = await self._send(client, method, path, csrf, json=json, params=params)
        except httpx.TransportError as exc:
            raise Transient(f"{method} {path}: {type(exc).__name__} {exc}".strip()) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise Transient(f"{method} {path}: Pulp answered {response.status_code}")
        return response

    async def _send(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        csrf: str | None,
        *,
        json: Json | None,
        params: Json | None,
    ) -> httpx.Response:
        _count(calls=1)
        headers = None if csrf is None else {"X-CSRFToken": csrf}
        auth = self._auth if csrf is None else httpx.USE_CLIENT_DEFAULT
        started = time.perf_counter()
        outcome = "error"
        try:
            async with self._slots:
                response = await client.request(
                    method, path, json=json, params=params, headers=headers, auth=auth
                )
            outcome = _outcome(response.status_code)
            return response
        finally:
            metrics.PULP_SECONDS.labels(method, outcome).observe(time.perf_counter() - started)
            # A 4xx is an answer (a lookup's 404 is normal); these are Pulp failing.
            if outcome in ("error", "http_5xx"):
                metrics.PULP_ERRORS.labels(method).inc()

    async def _session(self, *, renew_after: str | None) -> str | None:
        """The CSRF token of our Pulp session, logging in when there is none (None: basic auth).

        Pulp checks a basic-auth password with a slow hash on every request (about 0.5 s
        of its CPU); a session cookie is checked in a few milliseconds.
        """
        async with self._login_lock:
            if self._basic_only:
                return None
            if self._csrf is None or self._csrf == renew_after:
                self._csrf = await self._login()
            return self._csrf

    async def _login(self) -> str | None:
        client = self._http()
        client.cookies.clear()
        try:
            response = await client.post(LOGIN, auth=self._auth)
        except httpx.TransportError as exc:
            raise Transient(f"POST {LOGIN}: {type(exc).__name__} {exc}".strip()) from exc
        if response.status_code in (404, 405):
            self._basic_only = True  # a Pulp without the login endpoint (before 3.60)
            return None
        if response.status_code >= 500:
            raise Transient(f"POST {LOGIN}: Pulp answered {response.status_code}")
        self._checked("POST", LOGIN, response)
        csrf = client.cookies.get("csrftoken")
        if not csrf:
            self._basic_only = True
        return csrf

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.url, timeout=self._timeout, limits=CONNECTION_LIMITS
            )
            self._csrf = None
        return self._client

    @staticmethod
    def _checked(method: str, path: str, response: httpx.Response) -> Json:
        if response.is_error:
            raise PulpError(f"{method} {path} answered {response.status_code}: {_detail(response)}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PulpError(f"{method} {path} answered something else than a JSON object")
        return body

    async def _json(
        self, method: str, path: str, *, json: Json | None = None, params: Json | None = None
    ) -> Json:
        return self._checked(method, path, await self._call(method, path, json=json, params=params))

    async def _get_or_none(self, href: str) -> Json | None:
        response = await self._call("GET", href)
        if response.status_code == 404:
            return None
        return self._checked("GET", href, response)

    async def _list(self, endpoint: str, **filters: str) -> list[Json]:
        body = await self._json("GET", endpoint, params={**filters, "limit": 100})
        results: list[Json] = body["results"]
        return results

    async def _find_one(self, endpoint: str, **filters: str) -> Json | None:
        body = await self._json("GET", endpoint, params={**filters, "limit": 1})
        results: list[Json] = body["results"]
        return results[0] if results else None

    async def _delete(self, href: str) -> None:
        response = await self._call("DELETE", href)
        if response.status_code == 404:
            return
        answer = self._checked("DELETE", href, response) if response.content else {}
        if answer.get("task"):
            await self.wait_task(answer["task"])

    def _own_path(self, href: str, prefix: str, what: str) -> str:
        """An href from a message, as a path of this Pulp; never a request to another host."""
        path = href.removeprefix(self.url)
        if not path.startswith(prefix) or "?" in path or ".." in path:
            raise PulpError(f"{href!r} is not a Pulp {what} href (expected {prefix}...)")
        return path
