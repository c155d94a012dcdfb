"""The whole system as real processes on loopback: one gateway, three schedulers, artifacts.

End-to-end tests talk to it over HTTP exactly like albs-node does. It has its own database
and RabbitMQ prefix, so the in-process services of the integration tests never answer
its messages (nor it theirs).
"""

import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth.settings import AuthSettings
from auth.users import ensure_user, token_for
from shared.db.models import UserKind
from shared.db.session import SessionFactory, create_engine, create_session_factory, in_transaction
from tests.support.fixtures import (
    NO_PULP_POOL,
    env_of,
    first_build_id,
    scratch_database,
    scratch_prefix,
)
from tests.support.processes import ServiceProcess, free_port, service
from tests.support.servers import Servers
from tests.support.stack import settings_for

SCHEDULER_REPLICAS = 3
# Short leases so the lease tests need not wait minutes; nodes in these tests ping every second.
LEASE_SECONDS = 3


@dataclass(frozen=True)
class LiveStack:
    gateway_url: str
    env: dict[str, str]
    processes: list[ServiceProcess]
    sessions: SessionFactory

    def process(self, name: str) -> ServiceProcess:
        return next(p for p in self.processes if p.name == name)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()[-4000:]}" for p in self.processes)

    async def token(
        self, name: str, *, admin: bool = False, kind: UserKind = UserKind.USER
    ) -> dict[str, str]:
        """A bearer header for a user of the live stack, created if new."""
        user = await in_transaction(
            self.sessions, ensure_user, name, email=f"{name}@example.org", kind=kind, admin=admin
        )
        return {"Authorization": f"Bearer {token_for(user, settings_for(AuthSettings, self.env))}"}


def pulp_env() -> dict[str, str]:
    return {
        "ALBS_PULP_URL": os.environ.get("ALBS_PULP_URL", "http://127.0.0.1:24817"),
        "ALBS_PULP_USER": os.environ.get("ALBS_PULP_USER", "admin"),
        "ALBS_PULP_PASSWORD": os.environ.get("ALBS_PULP_PASSWORD", "admin"),
        **NO_PULP_POOL,
    }


@pytest.fixture(scope="session")
def live_env(servers: Servers, run_id: str) -> Iterator[dict[str, str]]:
    database = f"albs_test_{run_id}_live"
    for url in scratch_database(servers, database, first_build_id(run_id, offset=1000)):
        for prefix in scratch_prefix(servers, f"test-{run_id}-live"):
            yield env_of(servers, url, prefix)


@pytest.fixture(scope="session")
async def live_stack(
    live_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveStack]:
    env = {
        **live_env,
        **pulp_env(),
        "ALBS_LEASE_SECONDS": str(LEASE_SECONDS),
        "ALBS_REAPER_INTERVAL_SECONDS": "0.5",
    }
    services = [
        *((f"scheduler-{n}", "albs-scheduler") for n in range(1, SCHEDULER_REPLICAS + 1)),
        ("artifacts", "albs-artifacts"),
    ]
    async with running_stack(env, tmp_path_factory.mktemp("live-stack"), services) as stack:
        yield stack


@contextlib.asynccontextmanager
async def running_stack(
    env: dict[str, str], logs: Path, services: Sequence[tuple[str, str]]
) -> AsyncIterator[LiveStack]:
    """A gateway on a free port and these (name, script) services, stopped at the end."""
    port = free_port()
    env = {**env, "ALBS_PORT": str(port)}
    processes = [
        service("gateway", "albs-gateway", env, logs),
        *(service(name, script, env, logs) for name, script in services),
    ]
    engine = create_engine(env["ALBS_DATABASE_URL"], pool_size=5)
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.wait_ready()
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, {prefix for _, script in services for prefix in SERVES.get(script, ())})
        yield LiveStack(url, env, processes, create_session_factory(engine))
    finally:
        for process in processes:
            if process.process is not None:
                process.stop()
        await engine.dispose()


# The RPCs each service answers, by name prefix (shared/contracts: RpcSpec names).
SERVES = {
    "albs-scheduler": ("build.", "build_node.", "platform.", "signing.", "tests."),
    "albs-auth": ("auth.",),
    "albs-artifacts": ("distribution.",),
}


def _wait_healthy(url: str, served: set[str]) -> None:
    """Until /healthz answers and the gateway has seen a consumer for every RPC this stack
    serves: it fails fast (503) for an RPC it believes nobody serves."""
    body: Any = None
    for _ in range(150):
        try:
            answer = httpx.get(f"{url}/healthz", timeout=2)
            body = answer.json()
            consumers: dict[str, int | None] = body.get("rpc_consumers", {})
            if answer.status_code == 200 and all(
                count for name, count in consumers.items() if name.startswith(tuple(served))
            ):
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the gateway at {url} never became healthy: {body}")
