"""The `albs` HTTP commands against a gateway served on loopback, with a simulated node.

The in-process gateway is served by uvicorn on a free port, the scheduler answers its
RPCs, and the artifacts service is stood in for by its events (repositories ready,
artifacts stored). The CLI runs in a worker thread (typer's CliRunner) while the node
works on the event loop, and once as a real process for the unreachable gateway.
"""

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from faststream import FastStream
from typer.testing import CliRunner, Result

from auth import cli_api
from auth.cli import app as cli_app
from shared.contracts.build_node import BuildTaskArtifactsStored
from shared.db.models import UserKind
from shared.db.session import SessionFactory
from tests.support.builds import mark_ready, platform_body
from tests.support.events import EventBus
from tests.support.processes import free_port
from tests.support.stack import TokenMaker, bearer
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("clean_db")
NODE = "/api/v1/build_node"


class Served:
    """The in-process gateway (its lifespan already entered) served by uvicorn on a port."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, lifespan="off", log_level="warning"
        )
        server = self._server = uvicorn.Server(config)
        self._serving = asyncio.create_task(server.serve())
        await eventually(lambda: asyncio.sleep(0, result=server.started), timeout=10)

    async def stop(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._serving, timeout=10)
        self._server = self._serving = None


@pytest.fixture
async def served(gateway: FastAPI, scheduler: FastStream) -> AsyncIterator[Served]:
    served = Served(gateway)
    await served.start()
    try:
        yield served
    finally:
        await served.stop()


@pytest.fixture
def gateway_url(served: Served) -> str:
    return served.url


class Cli:
    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.home = home
        self.runner = CliRunner()
        # The CLI's consoles take their width from COLUMNS when it is imported, and an
        # xdist worker starts with COLUMNS=80: tables would be cut short.
        cli_api.out.width = cli_api.err.width = 200

    def env(self, token: str | None) -> dict[str, str | None]:
        # XDG_CONFIG_HOME in the test's directory: no real ~/.config/albs/cli.toml is read.
        return {
            "ALBS_URL": self.url,
            "ALBS_TOKEN": token,
            "ALBS_CLI_CONFIG": None,
            "XDG_CONFIG_HOME": str(self.home),
            "COLUMNS": "200",
        }

    async def __call__(self, token: str | None, *args: str) -> Result:
        return await asyncio.to_thread(
            self.runner.invoke, cli_app, list(args), env=self.env(token), catch_exceptions=True
        )


def clean_failure(result: Result, code: int, *words: str) -> None:
    """Exit code as documented, one line naming the problem, no traceback."""
    assert result.exit_code == code, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def token_of(header: dict[str, str]) -> str:
    return header["Authorization"].removeprefix("Bearer ")


async def work(
    api: httpx.AsyncClient,
    node: dict[str, str],
    bus: EventBus,
    build_id: int,
    tasks: int,
    outcome: str = "done",
) -> list[int]:
    """A node building `tasks` tasks, then the artifacts service filing each report."""
    built: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while len(built) < tasks:
        assert loop.time() < deadline, f"only {built} were handed out"
        answer = await api.request(
            "GET", f"{NODE}/get_task", json={"supported_arches": ["x86_64", "i686"]}, headers=node
        )
        assert answer.status_code == 200, answer.text
        task: dict[str, Any] | None = answer.json()
        if task is None:
            await asyncio.sleep(0.1)
            continue
        await asyncio.sleep(0.3)  # building, long enough for the watcher to see it started
        body = {"task_id": task["id"], "status": outcome, "artifacts": []}
        done = await api.post(f"{NODE}/build_done", json=body, headers=node)
        assert done.status_code == 200, done.text
        # The node's own task is attempt 1: nothing expired in these tests.
        await bus.publish(
            BuildTaskArtifactsStored(task_id=task["id"], build_id=build_id, attempt=1, error=None)
        )
        built.append(task["id"])
    return built


async def test_platform_submit_watch_list_and_queue(
    gateway_url: str,
    api: httpx.AsyncClient,
    make_token: TokenMaker,
    event_bus: EventBus,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    cli = Cli(gateway_url, tmp_path)
    admin = token_of(bearer(await make_token("cli-admin", admin=True)))
    user = token_of(bearer(await make_token("cli-user")))
    node = {**bearer(await make_token("cli-node", kind=UserKind.NODE)), "X-Node-Id": "b1"}

    platform_file = tmp_path / "platform.yaml"
    platform_file.write_text(yaml.safe_dump([platform_body("CLI-8", ["x86_64", "i686"])]))
    loaded = await cli(admin, "platform", "load", str(platform_file))
    assert loaded.exit_code == 0, loaded.output
    assert loaded.stdout.startswith("created platform CLI-8 (id ")
    again = await cli(admin, "platform", "load", str(platform_file))
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("updated platform CLI-8 (id ")

    submitted = await cli(
        user,
        "build",
        "submit",
        "--platform",
        "CLI-8:x86_64,i686",
        "--ref",
        "https://git.example.org/rpms/a.git@imports/c8/a-1.0-1",
        "--ref",
        "https://git.example.org/rpms/b.git",
    )
    assert submitted.exit_code == 0, submitted.output
    build_id = int(submitted.stdout.strip())
    build = (await api.get(f"/api/v1/builds/{build_id}/", headers=bearer(user))).json()
    assert [(t["ref"]["url"], t["ref"]["git_ref"]) for t in build["tasks"]][::2] == [
        ("https://git.example.org/rpms/a.git", "imports/c8/a-1.0-1"),
        ("https://git.example.org/rpms/b.git", None),
    ]
    await mark_ready(event_bus, sessions, build_id)

    # The queue while the build waits: four tasks; each arch and ref waits for the one before.
    queue = await cli(admin, "queue")
    assert queue.exit_code == 0, queue.output
    assert "1 runnable, 3 blocked, 0 started" in queue.stdout
    assert "CLI-8" in queue.stdout

    # One CliRunner at a time: each swaps sys.stdout while it runs.
    watching = asyncio.create_task(
        cli(
            user,
            "build",
            "watch",
            str(build_id),
            "--interval",
            "0.2",
            "--timeout",
            "60",
            "--patience",
            "2",
        )
    )

    built = await work(api, node, event_bus, build_id, tasks=4)
    watched = await asyncio.wait_for(watching, timeout=90)
    assert watched.exit_code == 0, watched.output
    assert f"build {build_id}: completed" in watched.stdout
    assert "cli-node/b1" in watched.stdout
    assert "4/4" in watched.stdout
    assert sorted(built) == sorted(t["id"] for t in build["tasks"])

    listed = await cli(user, "build", "list")
    assert listed.exit_code == 0, listed.output
    assert str(build_id) in listed.stdout
    assert "completed" in listed.stdout

    # A token from the config file instead of the environment.
    config = tmp_path / "albs" / "cli.toml"
    config.parent.mkdir()
    config.write_text(f'url = "{gateway_url}"\ntoken = "{admin}"\n')
    from_file = await cli(None, "queue")
    assert from_file.exit_code == 0, from_file.output
    assert "0 runnable, 0 blocked, 0 started" in from_file.stdout


async def test_watch_fails_for_a_failed_build(
    gateway_url: str,
    api: httpx.AsyncClient,
    make_token: TokenMaker,
    event_bus: EventBus,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    cli = Cli(gateway_url, tmp_path)
    admin = bearer(await make_token("cli-admin", admin=True))
    user = token_of(bearer(await make_token("cli-user")))
    node = bearer(await make_token("cli-node", kind=UserKind.NODE))
    answer = await api.post(
        "/api/v1/platforms/", json=platform_body("F-8", ["x86_64"]), headers=admin
    )
    assert answer.status_code == 200, answer.text
    submitted = await cli(
        user, "build", "submit", "--platform", "F-8:x86_64", "--ref", "https://g.example.org/x.git"
    )
    build_id = int(submitted.stdout.strip())
    await mark_ready(event_bus, sessions, build_id)
    await work(api, node, event_bus, build_id, tasks=1, outcome="failed")
    watched = await cli(
        user,
        "build",
        "watch",
        str(build_id),
        "--interval",
        "0.2",
        "--timeout",
        "30",
        "--patience",
        "2",
    )
    clean_failure(watched, 1, f"build {build_id} failed")
    assert "failed" in watched.stdout


async def test_refusals_are_one_line_each(
    gateway_url: str, make_token: TokenMaker, tmp_path: Path
) -> None:
    cli = Cli(gateway_url, tmp_path)
    user = token_of(bearer(await make_token("cli-user")))

    clean_failure(await cli(user, "queue"), 3, "refused (403)", "administrator")
    clean_failure(await cli(None, "build", "list"), 3, "(403)", "ALBS_TOKEN")
    clean_failure(await cli(user, "build", "watch", "999999"), 3, "not found (404)")
    unknown = await cli(
        user, "build", "submit", "--platform", "Nope:x86_64", "--ref", "https://g.example.org/x.git"
    )
    clean_failure(unknown, 3, "(404)", "Nope")
    bad_arch = await cli(
        user, "build", "submit", "--platform", "P:x86 64", "--ref", "https://g.example.org/x.git"
    )
    clean_failure(bad_arch, 3, "invalid request (422)", "arch_list")
    usage = await cli(
        user, "build", "submit", "--platform", "no-arches", "--ref", "https://g.example.org/x.git"
    )
    assert usage.exit_code == 2
    assert "NAME:arch" in usage.output

    config = tmp_path / "albs" / "cli.toml"
    config.parent.mkdir()
    config.write_text('url = "http://127.0.0.1:1"\ntoken = \n')
    clean_failure(await cli(None, "build", "list"), 2, "cannot read the config file")


def test_an_unreachable_gateway_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    albs = Path(sys.executable).with_name("albs")
    env = {
        **os.environ,
        "ALBS_URL": f"http://127.0.0.1:{free_port()}",
        "ALBS_TOKEN": "x",
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    env.pop("ALBS_CLI_CONFIG", None)
    done = subprocess.run(
        [str(albs), "build", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("albs: cannot reach the gateway at http://127.0.0.1:")
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


async def test_watch_rides_out_a_gateway_restart(
    served: Served,
    api: httpx.AsyncClient,
    make_token: TokenMaker,
    event_bus: EventBus,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    cli = Cli(served.url, tmp_path)
    admin = bearer(await make_token("cli-admin", admin=True))
    user = token_of(bearer(await make_token("cli-user")))
    node = bearer(await make_token("cli-node", kind=UserKind.NODE))
    answer = await api.post(
        "/api/v1/platforms/", json=platform_body("R-8", ["x86_64"]), headers=admin
    )
    assert answer.status_code == 200, answer.text
    submitted = await cli(
        user, "build", "submit", "--platform", "R-8:x86_64", "--ref", "https://g.example.org/r.git"
    )
    build_id = int(submitted.stdout.strip())
    watching = asyncio.create_task(
        cli(user, "build", "watch", str(build_id), "--interval", "0.2", "--patience", "30")
    )
    await asyncio.sleep(1)  # the watcher has seen the build queued
    await served.stop()
    # While no gateway listens, the build runs to completion.
    await mark_ready(event_bus, sessions, build_id)
    await work(api, node, event_bus, build_id, tasks=1)
    await asyncio.sleep(1)
    assert not watching.done()
    await served.start()
    watched = await asyncio.wait_for(watching, timeout=30)
    assert watched.exit_code == 0, watched.output
    assert f"build {build_id}: completed" in watched.stdout
