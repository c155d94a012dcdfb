"""Each service is a process that starts, answers ready on its probe, serves its metrics,
and stops cleanly on SIGTERM."""

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import BIN, free_port, service

SCRIPTS = ["albs-gateway", "albs-scheduler", "albs-artifacts", "albs-auth", "albs-gitea-bridge"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_service_starts_reports_ready_and_stops_on_sigterm(
    script: str, service_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {**service_env, "ALBS_PORT": str(port), "ALBS_MQTT_CLIENT_ID": f"test-{port}"}
    proc = service(script, script, env, tmp_path)
    proc.start()
    try:
        proc.wait_ready()
        if script == "albs-gateway":
            health = _get_health(port)
            servers = {name: health[name] for name in ("postgresql", "rabbitmq", "redis")}
            assert servers == {"postgresql": "ok", "rabbitmq": "ok", "redis": "ok"}
            # Which RPCs have consumers depends on the services this test run started.
            assert health["status"] in ("ok", "degraded")
            assert "build_node.get_task" in health["rpc_consumers"]
            assert isinstance(health["dead_letters"], int)
        else:
            ready = httpx.get(f"{proc.ops_url}/healthz", timeout=5)
            assert (ready.status_code, ready.json()["status"]) == (200, "ready"), ready.text
        scraped = httpx.get(f"{proc.ops_url}/metrics", timeout=10)
        assert scraped.status_code == 200
        assert "albs_messages_handled_total" in scraped.text
    finally:
        code = proc.stop()
    # uvicorn re-raises SIGTERM after its graceful shutdown; both mean "stopped cleanly".
    assert code in (0, -signal.SIGTERM), proc.log()[-2000:]
    assert f"{script.removeprefix('albs-')} stopped" in proc.log()
    assert "Traceback" not in proc.log()


def _get_health(port: int) -> dict[str, Any]:
    for _ in range(50):
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        except httpx.TransportError:
            continue
        body: dict[str, Any] = answer.json()
        return body
    raise AssertionError("the gateway never answered /healthz")


def test_missing_secret_stops_the_gateway_with_a_message(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in service_env.items() if k != "ALBS_JWT_SECRET"}
    result = subprocess.run(
        [str(BIN / "albs-gateway")],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "ALBS_JWT_SECRET is required but not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_token_is_accepted_by_the_gateway(service_env: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, **service_env}
    token = subprocess.run(
        [str(BIN / "albs"), "token", "create", "--username", "cli-admin", "--admin"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    port = free_port()
    gateway = service("gateway", "albs-gateway", {**service_env, "ALBS_PORT": str(port)}, tmp_path)
    gateway.start()
    try:
        gateway.wait_ready()
        _get_health(port)
        answer = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/platforms/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    finally:
        gateway.stop()
    assert answer.status_code == 200
    assert isinstance(answer.json(), list)
