"""The real servers tests run against: the local ones when reachable, else containers.

A server that is neither reachable nor startable is a loud failure, never a skip.
"""

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.settings import CommonSettings


@dataclass(frozen=True)
class Servers:
    database_url: str  # the server's maintenance database; tests create their own
    amqp_url: str
    redis_url: str
    mqtt_host: str
    mqtt_port: int


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def local_servers() -> Servers:
    settings = CommonSettings()
    return Servers(
        database_url=os.environ.get(
            "ALBS_TEST_DATABASE_URL", settings.database_url.rsplit("/", 1)[0] + "/postgres"
        ),
        amqp_url=settings.amqp_url,
        redis_url=settings.redis_url,
        mqtt_host=os.environ.get("ALBS_MQTT_QUEUE_HOST", "127.0.0.1"),
        mqtt_port=int(os.environ.get("ALBS_MQTT_QUEUE_PORT", "1883")),
    )


def missing(servers: Servers) -> list[str]:
    checks = {
        "PostgreSQL": _host_port(servers.database_url, 5432),
        "RabbitMQ": _host_port(servers.amqp_url, 5672),
        "Redis": _host_port(servers.redis_url, 6379),
        "Mosquitto": (servers.mqtt_host, servers.mqtt_port),
    }
    return [f"{name} at {h}:{p}" for name, (h, p) in checks.items() if not reachable(h, p)]


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def container_servers(stack: ExitStack) -> Servers:
    """Start the four servers in containers (only used when the local ones are missing)."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.postgres import PostgresContainer
    from testcontainers.rabbitmq import RabbitMqContainer
    from testcontainers.redis import RedisContainer

    pg = stack.enter_context(PostgresContainer("postgres:15", driver="asyncpg"))
    rabbit = stack.enter_context(RabbitMqContainer("rabbitmq:3.13"))
    redis = stack.enter_context(RedisContainer("redis:7"))
    mosquitto = DockerContainer("eclipse-mosquitto:2").with_exposed_ports(1883)
    mosquitto.with_command("mosquitto -c /mosquitto-no-auth.conf")
    stack.enter_context(mosquitto)
    wait_for_logs(mosquitto, "running")
    rabbit_params = rabbit.get_connection_params()
    return Servers(
        database_url=pg.get_connection_url().rsplit("/", 1)[0] + "/postgres",
        amqp_url=(f"amqp://guest:guest@{rabbit_params.host}:{rabbit_params.port}/"),
        redis_url=(f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"),
        mqtt_host=mosquitto.get_container_host_ip(),
        mqtt_port=int(mosquitto.get_exposed_port(1883)),
    )


def provide_servers() -> Iterator[Servers]:
    servers = local_servers()
    absent = missing(servers)
    if not absent:
        yield servers
        return
    if not docker_available():
        raise RuntimeError(
            "Integration tests need real servers, and these are not reachable: "
            + ", ".join(absent)
            + ". Start them (scripts/ensure-servers) or make Docker available for testcontainers."
        )
    with ExitStack() as stack:
        yield container_servers(stack)
