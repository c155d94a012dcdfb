"""What an operator watches, after one real build through the running services.

Every service runs as a process with JSON logs and its ops port. A build goes through a
simulated node; then each /metrics is scraped for the series the operator needs, and the
build's request id is followed through the gateway, scheduler and artifacts logs and into
the outbox. No token shows in any log.
"""

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from shared.db.models import OutboxMessage, UserKind
from tests.e2e.test_build_node_e2e import REFERENCE_PLATFORM, REFS, build_one
from tests.support.fixtures import env_of, first_build_id, scratch_database, scratch_prefix
from tests.support.live_stack import LiveStack, pulp_env, running_stack
from tests.support.nodes import build_done, get_task
from tests.support.rpms import RpmFactory
from tests.support.servers import Servers
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.pulp]

ARCH = "x86_64"
SERVICES = [
    ("scheduler", "albs-scheduler"),
    ("artifacts", "albs-artifacts"),
    ("auth", "albs-auth"),
    ("gitea-bridge", "albs-gitea-bridge"),
]
Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture(scope="module")
def observed_env(servers: Servers, run_id: str) -> Iterator[dict[str, str]]:
    database = f"albs_test_{run_id}_obs"
    for url in scratch_database(servers, database, first_build_id(run_id, offset=2900)):
        for prefix in scratch_prefix(servers, f"test-{run_id}-obs"):
            yield env_of(servers, url, prefix)


@pytest.fixture(scope="module")
async def observed_stack(
    observed_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveStack]:
    env = {
        **observed_env,
        **pulp_env(),
        "ALBS_LOG_FORMAT": "json",
        "ALBS_MQTT_CLIENT_ID": f"albs-obs-{uuid.uuid4().hex[:8]}",
    }
    async with running_stack(env, tmp_path_factory.mktemp("observed"), SERVICES) as stack:
        yield stack


def scrape(url: str) -> Samples:
    answer = httpx.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample's value, None when the series is absent."""
    for found, sample_value in samples.get(name, []):
        if all(found.get(k) == v for k, v in labels.items()):
            return sample_value
    return None


def log_entries(stack: LiveStack, name: str) -> list[dict[str, Any]]:
    entries = []
    for line in stack.process(name).log().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


async def run_build(
    stack: LiveStack,
    rpms: RpmFactory,
    pulp_http: httpx.AsyncClient,
    tmp_path: Path,
    request_id: str,
) -> tuple[int, str, list[str]]:
    """One build of one ref on one arch, to completion: its id, platform, the tokens used."""
    admin = await stack.token("obs-admin", admin=True)
    user = await stack.token("obs-user")
    node = await stack.token("obs-node", kind=UserKind.NODE)
    platform = yaml.safe_load(REFERENCE_PLATFORM.read_text())
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as client:
        created = await client.post("/api/v1/platforms/", json=platform, headers=admin)
        assert created.status_code == 200, created.text
        body = {
            "platforms": [{"name": platform["name"], "arch_list": [ARCH]}],
            "tasks": [{"url": REFS[0][1], "git_ref": "1.0-1"}],
            "linked_builds": [],
            "mock_options": {},
        }
        answer = await client.post(
            "/api/v1/builds/", json=body, headers={**user, "X-Request-ID": request_id}
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Request-ID"] == request_id
        build_id = answer.json()["id"]

        async def idle_counted() -> bool:
            samples = scrape(stack.process("scheduler").ops_url)
            idle = value(samples, "albs_tasks", state="idle", platform=platform["name"], arch=ARCH)
            return bool(idle)

        assert await eventually(idle_counted, timeout=60, every=0.5), stack.logs()

        async def next_task() -> dict[str, Any] | None:
            return await get_task(client, node, [ARCH])

        task = await eventually(next_task, timeout=120, every=0.5)
        assert task is not None
        artifacts = await build_one(client, pulp_http, node, task, rpms, tmp_path)
        done = await build_done(client, node, task["id"], "done", artifacts)
        assert done.status_code == 200, done.text

        async def completed() -> bool:
            view = (await client.get(f"/api/v1/builds/{build_id}/", headers=user)).json()
            return bool(view["status"] == "completed")

        assert await eventually(completed, timeout=120, every=0.5), stack.logs()
    tokens = [h["Authorization"].removeprefix("Bearer ") for h in (admin, user, node)]
    return build_id, platform["name"], tokens


async def test_metrics_and_one_request_followed_across_the_services(
    observed_stack: LiveStack, rpms: RpmFactory, pulp_http: httpx.AsyncClient, tmp_path: Path
) -> None:
    stack = observed_stack
    request_id = f"obs-{uuid.uuid4().hex}"
    build_id, platform, tokens = await run_build(stack, rpms, pulp_http, tmp_path, request_id)

    gateway = scrape(stack.gateway_url)
    post_builds = {"route": "/api/v1/builds/", "method": "POST", "status": "200"}
    assert value(gateway, "albs_http_request_duration_seconds_count", **post_builds) == 1
    assert value(gateway, "albs_rpc_duration_seconds_count", rpc="build.create", outcome="ok")
    assert value(gateway, "albs_rpc_duration_seconds_count", rpc="build_node.build_done")
    assert value(gateway, "albs_dead_letters") == 0
    assert "albs_rpc_timeouts_total" in httpx.get(f"{stack.gateway_url}/metrics").text

    # The build is done: its group's gauges drop to zero, still present (the gauges are
    # read again at most every few seconds).
    async def drained() -> Samples | None:
        samples = scrape(stack.process("scheduler").ops_url)
        gauges = [
            value(samples, "albs_tasks", state="idle", platform=platform, arch=ARCH),
            value(samples, "albs_tasks", state="started", platform=platform, arch=ARCH),
            value(samples, "albs_oldest_idle_task_age_seconds", arch=ARCH),
        ]
        return samples if gauges == [0, 0, 0] else None

    scheduler = await eventually(drained, timeout=30, every=1)
    assert scheduler is not None
    handled = "albs_messages_handled_total"
    assert value(scheduler, handled, handler="rpc.build.create", outcome="ok") == 1
    assert value(scheduler, handled, handler="scheduler.build.repos_ready", outcome="ok") == 1
    assert value(scheduler, "albs_leases_expired_total") == 0
    assert value(scheduler, "albs_outbox_lag_seconds") is not None

    artifacts = scrape(stack.process("artifacts").ops_url)
    assert value(artifacts, handled, handler="artifacts.build.created", outcome="ok") == 1
    assert value(artifacts, handled, handler="artifacts.build_task.finished", outcome="ok") == 1
    assert value(artifacts, "albs_pulp_request_duration_seconds_count", method="POST", outcome="ok")
    assert (
        "albs_pulp_errors_total" in httpx.get(f"{stack.process('artifacts').ops_url}/metrics").text
    )

    for name in ("auth", "gitea-bridge"):
        assert value(scrape(stack.process(name).ops_url), "albs_outbox_lag_seconds") is not None

    # One request's story: the gateway took it, the scheduler planned the build, artifacts
    # made its repositories, and the scheduler heard back, all under the caller's id.
    def story(name: str) -> list[str]:
        return [
            e["message"] for e in log_entries(stack, name) if e.get("correlation_id") == request_id
        ]

    assert any("POST /api/v1/builds/ -> 200" in m for m in story("gateway")), stack.logs()
    assert any("handled rpc.build.create: ok" in m for m in story("scheduler")), stack.logs()
    assert any("handled artifacts.build.created: ok" in m for m in story("artifacts"))
    assert any("handled scheduler.build.repos_ready: ok" in m for m in story("scheduler"))
    async with stack.sessions() as session:
        caused = (
            await session.scalars(
                select(OutboxMessage.routing_key).where(OutboxMessage.correlation_id == request_id)
            )
        ).all()
    assert {"build.created", "build.repos_ready"} <= set(caused)

    every_log = "\n".join(p.log() for p in stack.processes)
    assert not [token for token in tokens if token in every_log]
    assert str(build_id) in every_log
