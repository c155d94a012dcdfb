"""The artifacts service: per-build Pulp repositories and the artifacts filed into them."""

import asyncio

from faststream import FastStream

from artifacts.context import Context
from artifacts.handlers.builds import CONSUMER, build_handlers
from artifacts.handlers.distributions import distribution_handlers
from artifacts.pulp import PulpClient
from artifacts.settings import ArtifactsSettings
from shared.logs import setup_logging
from shared.messaging.runtime import build_app, create_runtime
from shared.settings import load_settings


def create_app(settings: ArtifactsSettings | None = None) -> FastStream:
    settings = settings or load_settings(ArtifactsSettings)
    runtime = create_runtime("artifacts", settings, pool_size=settings.db_pool_size)
    pulp = PulpClient.from_settings(settings)
    runtime.on_start.append(pulp.start)
    runtime.on_stop.append(pulp.close)
    routers = [
        build_handlers(runtime.topology, runtime.sessions, pulp),
        distribution_handlers(runtime.topology, Context(pulp, runtime.sessions, CONSUMER)),
    ]
    return build_app(runtime, routers)


def main() -> None:
    settings = load_settings(ArtifactsSettings)
    setup_logging(settings.log_level, settings.log_format)
    asyncio.run(create_app(settings).run())
