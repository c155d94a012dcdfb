"""`albs` commands that talk to a gateway over HTTP: platforms, builds, the queue.

Where and as whom (the first that is set wins):
- gateway: `--url`, then `ALBS_URL`, then `url` in the config file, then
  http://127.0.0.1:8088;
- token: `ALBS_TOKEN`, then `token` in the config file.
The config file is `ALBS_CLI_CONFIG`, else `$XDG_CONFIG_HOME/albs/cli.toml`
(`~/.config/albs/cli.toml`), a TOML file with `url = "..."` and `token = "..."`.

Exit codes: 0 success (for `build watch`: the build completed), 1 the build failed or was
cancelled, 2 bad usage or configuration, 3 the gateway refused or could not be reached (one line on stderr
says why), 4 `build watch` gave up (`--timeout`).
"""

import os
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:8088"
API = "/api/v1"
EXIT_BUILD_FAILED = 1
EXIT_USAGE = 2
EXIT_API_ERROR = 3
EXIT_TIMEOUT = 4
# Build task statuses (shared/db/models/builds.py BuildTaskStatus) as people read them.
TASK_STATUS = {0: "idle", 1: "started", 2: "completed", 3: "failed", 4: "excluded", 5: "cancelled"}
FINISHED_TASK = {2, 3, 4, 5}
SETTLED_BUILD = {"completed", "failed", "cancelled"}
STATUS_STYLE = {
    "idle": "dim",
    "started": "cyan",
    "completed": "green",
    "failed": "red",
    "excluded": "yellow",
    "cancelled": "magenta",
    "queued": "dim",
    "running": "cyan",
}

platform_app = typer.Typer(help="Build platforms (administrators).", no_args_is_help=True)
build_app = typer.Typer(help="Submit, list and watch builds.", no_args_is_help=True)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", help="The gateway (env ALBS_URL, config file `url`).", show_default=False
    ),
]
out = Console()
err = Console(stderr=True)


class ApiError(Exception):
    """A refusal (`status` set) or an unreachable gateway (`status` None), said in one line."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        """Worth another try: the gateway was unreachable, or a service behind it (503)."""
        return self.status is None or self.status == 503


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None


def config_path() -> Path:
    explicit = os.environ.get("ALBS_CLI_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "albs" / "cli.toml"


def read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        if os.environ.get("ALBS_CLI_CONFIG"):
            fail(f"ALBS_CLI_CONFIG names {path}, which is not a file", code=EXIT_USAGE)
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        fail(f"cannot read the config file {path}: {exc}", code=EXIT_USAGE)


def target(url: str | None) -> Target:
    config = read_config(config_path())
    chosen = url or os.environ.get("ALBS_URL") or config.get("url") or DEFAULT_URL
    token = os.environ.get("ALBS_TOKEN") or config.get("token")
    if not isinstance(chosen, str) or not chosen.startswith(("http://", "https://")):
        fail(
            f"the gateway URL must start with http:// or https://, not {chosen!r}", code=EXIT_USAGE
        )
    if token is not None and not isinstance(token, str):
        fail(f"`token` in {config_path()} must be a string", code=EXIT_USAGE)
    return Target(chosen.rstrip("/"), token or None)


def fail(message: str, code: int = EXIT_API_ERROR) -> NoReturn:
    err.print(f"albs: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _detail(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text.strip()[:300] or answer.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):  # 422: [{"loc": [...], "msg": ...}, ...]
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg")))
        return "; ".join(parts) or str(detail)
    return str(detail)


EXPLAIN = {
    401: "not authenticated",
    403: "refused (403)",
    404: "not found (404)",
    409: "conflict (409)",
    413: "request too large (413)",
    422: "invalid request (422)",
    503: "service unavailable (503)",
}


class Api:
    """A gateway client that turns every failure into an ApiError with one readable line."""

    def __init__(self, target: Target, timeout: float = 30.0) -> None:
        self.target = target
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        self._client = httpx.Client(base_url=target.url, headers=headers, timeout=timeout)

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            answer = self._client.request(method, API + path, **kwargs)
        except httpx.ConnectError as exc:
            raise ApiError(f"cannot reach the gateway at {self.target.url}: {exc}") from None
        except httpx.TimeoutException:
            raise ApiError(f"the gateway at {self.target.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ApiError(f"talking to the gateway at {self.target.url} failed: {exc}") from None
        if answer.is_success:
            return answer.json() if answer.content else None
        status = answer.status_code
        message = f"{EXPLAIN.get(status, f'HTTP {status}')}: {_detail(answer)}"
        if status in (401, 403) and not self.target.token:
            message += " (no token: set ALBS_TOKEN or `token` in " + f"{config_path()})"
        raise ApiError(message, status)


def api(url: str | None) -> Api:
    return Api(target(url))


def call(client: Api, method: str, path: str, **kwargs: Any) -> Any:
    try:
        return client.request(method, path, **kwargs)
    except ApiError as exc:
        fail(str(exc))


# --- platforms ---------------------------------------------------------------------------


def platforms_in(path: Path) -> list[dict[str, Any]]:
    """A platform mapping, a list of them, or several YAML documents of either."""
    try:
        documents = list(yaml.safe_load_all(path.read_text()))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        fail(f"cannot read {path}: {exc}", code=EXIT_USAGE)
    found: list[dict[str, Any]] = []
    for document in documents:
        items = document if isinstance(document, list) else [document]
        for item in items:
            if item is None:
                continue
            if not isinstance(item, dict) or "name" not in item:
                fail(f"{path}: every platform must be a mapping with a `name`", code=EXIT_USAGE)
            found.append(item)
    if not found:
        fail(f"{path} holds no platform", code=EXIT_USAGE)
    return found


@platform_app.command("load")
def platform_load(
    file: Annotated[Path, typer.Argument(help="YAML: one platform, or a list of them.")],
    url: UrlOption = None,
) -> None:
    """Create each platform of FILE, or update it when it exists."""
    with api(url) as client:
        for platform in platforms_in(file):
            try:
                summary = client.request("POST", "/platforms/", json=platform)
                verb = "created"
            except ApiError as exc:
                if exc.status != 409:
                    fail(f"platform {platform['name']}: {exc}")
                summary = call(client, "PUT", "/platforms/", json=platform)
                verb = "updated"
            typer.echo(f"{verb} platform {summary['name']} (id {summary['id']})")


# --- builds ------------------------------------------------------------------------------


def parse_platform(value: str) -> dict[str, Any]:
    name, sep, arches = value.partition(":")
    arch_list = [a.strip() for a in arches.split(",") if a.strip()]
    if not sep or not name.strip() or not arch_list:
        raise typer.BadParameter(
            f"{value!r}: expected NAME:arch[,arch...], e.g. AlmaLinux-8:x86_64"
        )
    return {"name": name.strip(), "arch_list": arch_list}


def parse_ref(value: str) -> dict[str, Any]:
    """URL[@REF]: the ref follows the first `@` of the URL's path (user@host stays whole)."""
    if "://" in value:
        scheme, _, rest = value.partition("://")
        host, slash, path = rest.partition("/")
        head = f"{scheme}://{host}{slash}"
    else:  # scp-like git@host:path
        host, colon, path = value.partition(":")
        head = f"{host}{colon}"
    repo, at, ref = path.partition("@")
    if not repo or (at and not ref):
        raise typer.BadParameter(f"{value!r}: expected URL[@REF]")
    return {"url": head + repo, "git_ref": ref or None}


@build_app.command("submit")
def build_submit(
    platform: Annotated[
        list[str], typer.Option("--platform", help="NAME:arch,arch (repeat for more platforms).")
    ],
    ref: Annotated[
        list[str], typer.Option("--ref", help="URL[@REF] of a source (repeat; built in order).")
    ],
    linked_build: Annotated[
        list[int] | None, typer.Option("--linked-build", help="Build against this build's repos.")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Submit a build and print its id."""
    body = {
        "platforms": [parse_platform(p) for p in platform],
        "tasks": [parse_ref(r) for r in ref],
        "linked_builds": linked_build or [],
        "mock_options": {},
    }
    with api(url) as client:
        build = call(client, "POST", "/builds/", json=body)
    typer.echo(build["id"])


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _styled(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


@build_app.command("list")
def build_list(
    page: Annotated[int, typer.Option(min=1, help="Page, newest builds first.")] = 1,
    page_size: Annotated[int, typer.Option(min=1, max=100)] = 20,
    url: UrlOption = None,
) -> None:
    """The newest builds with their status and task counts."""
    with api(url) as client:
        answer = call(
            client, "GET", "/builds/", params={"pageNumber": page, "page_size": page_size}
        )
    table = Table(title=f"builds (page {page}, {answer['total_builds']} in all)")
    for column in ("id", "created (UTC)", "user", "status", "platforms", "tasks"):
        table.add_column(column)
    for build in answer["builds"]:
        platforms = sorted({t["platform"]["name"] for t in build["tasks"]})
        counts = Counter(TASK_STATUS.get(t["status"], str(t["status"])) for t in build["tasks"])
        table.add_row(
            str(build["id"]),
            _when(build["created_at"]),
            build["user"]["username"],
            _styled(build["status"]),
            ", ".join(platforms),
            " ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        )
    out.print(table)


def _elapsed(task: dict[str, Any], now: datetime) -> str:
    """Since the task was queued, until it finished (or until now)."""
    start = task.get("created_at")
    if not start:
        return "-"
    end = task.get("finished_at")
    stop = datetime.fromisoformat(end) if end else now
    seconds = max(0, int((stop - datetime.fromisoformat(start)).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


def watch_view(build: dict[str, Any], progress: Progress, note: str = "") -> Group:
    now = datetime.now(UTC)
    table = Table(title=f"build {build['id']}: {build['status']}{note}")
    for column in ("task", "platform", "arch", "ref", "status", "node", "attempt", "elapsed"):
        table.add_column(column)
    for task in build["tasks"]:
        ref = task["ref"]["url"].rstrip("/").rsplit("/", 1)[-1]
        if task["ref"].get("git_ref"):
            ref += f"@{task['ref']['git_ref']}"
        status = TASK_STATUS.get(task["status"], str(task["status"]))
        table.add_row(
            str(task["id"]),
            task["platform"]["name"],
            task["arch"],
            ref,
            _styled(status),
            task.get("node_id") or "-",
            str(task.get("attempt") or 0),
            _elapsed(task, now),
        )
    return Group(table, progress)


@build_app.command("watch")
def build_watch(
    build_id: Annotated[int, typer.Argument(help="The build's id.")],
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between looks.")] = 2.0,
    timeout: Annotated[
        float, typer.Option(min=1, help="Give up (exit 4) after this many seconds.")
    ] = 86400.0,
    patience: Annotated[
        float,
        typer.Option(min=0, help="Seconds to keep retrying while the gateway is unreachable."),
    ] = 60.0,
    url: UrlOption = None,
) -> None:
    """Follow a build until it settles: exit 0 if it completed, 1 if it failed or was cancelled."""
    deadline = time.monotonic() + timeout
    progress = Progress(
        TextColumn("finished tasks"), BarColumn(), MofNCompleteColumn(), console=out
    )
    bar = progress.add_task("tasks", total=None)
    with api(url) as client:
        build = call(client, "GET", f"/builds/{build_id}/")
        failing_since: float | None = None
        with Live(watch_view(build, progress), console=out, refresh_per_second=4) as live:
            while build["status"] not in SETTLED_BUILD:
                if time.monotonic() >= deadline:
                    live.stop()
                    fail(f"build {build_id} is still {build['status']} after {timeout:g} s", 4)
                time.sleep(interval)
                try:
                    build = client.request("GET", f"/builds/{build_id}/")
                    failing_since = None
                    note = ""
                except ApiError as exc:
                    # A gateway restart must not end a long watch; a refusal does at once.
                    failing_since = failing_since or time.monotonic()
                    if not exc.transient or time.monotonic() - failing_since > patience:
                        live.stop()
                        fail(str(exc))
                    note = f" (retrying: {exc})"
                finished = sum(1 for t in build["tasks"] if t["status"] in FINISHED_TASK)
                progress.update(bar, total=len(build["tasks"]), completed=finished)
                live.update(watch_view(build, progress, note))
            finished = sum(1 for t in build["tasks"] if t["status"] in FINISHED_TASK)
            progress.update(bar, total=len(build["tasks"]), completed=finished)
            live.update(watch_view(build, progress))
    if not out.is_terminal:
        out.line()  # Live leaves its last line open when it renders only once, at the end
    if build["status"] != "completed":
        reason = f": {build['failure_reason']}" if build.get("failure_reason") else ""
        fail(f"build {build_id} {build['status']}{reason}", EXIT_BUILD_FAILED)
    err.print(f"build {build_id} completed", highlight=False)


# --- the queue ---------------------------------------------------------------------------


def _wait(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}"


def queue_command(url: UrlOption = None) -> None:
    """Waiting and running tasks per platform and arch, and the nodes at work (admins)."""
    with api(url) as client:
        queue = call(client, "GET", "/queue/")
    groups = Table(
        title=f"queue: {queue['runnable']} runnable, {queue['idle'] - queue['runnable']} "
        f"blocked, {queue['started']} started; oldest wait {_wait(queue['oldest_runnable_wait_seconds'])}"
    )
    for column in ("platform", "arch", "runnable", "blocked", "started", "oldest wait"):
        groups.add_column(column)
    for g in queue["groups"]:
        groups.add_row(
            g["platform"],
            g["arch"],
            str(g["runnable"]),
            str(g["blocked"]),
            str(g["started"]),
            _wait(g["oldest_runnable_wait_seconds"]),
        )
    nodes = Table(title=f"nodes at work: {len(queue['nodes'])}")
    for column in (
        "node",
        "last seen (UTC)",
        "task",
        "build",
        "platform",
        "arch",
        "attempt",
        "lease",
    ):
        nodes.add_column(column)
    for node in queue["nodes"]:
        for n, task in enumerate(node["tasks"]):
            lease = (
                "expired" if task["lease_expired"] else f"until {_when(task['lease_expires_at'])}"
            )
            nodes.add_row(
                node["node_id"] if n == 0 else "",
                _when(node["last_seen"]) if n == 0 else "",
                str(task["task_id"]),
                str(task["build_id"]),
                task["platform"],
                task["arch"],
                str(task["attempt"]),
                lease,
            )
    out.print(groups)
    out.print(nodes)


def register(app: typer.Typer) -> None:
    """Add the HTTP commands to the `albs` application."""
    app.add_typer(platform_app, name="platform")
    app.add_typer(build_app, name="build")
    app.command("queue")(queue_command)
