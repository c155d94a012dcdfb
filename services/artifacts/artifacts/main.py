"""The artifacts service: per-build Pulp repositories and the artifacts filed into them."""

import asyncio

from faststream import FastStream

from artifacts.context import Context
from artifacts.handlers.builds import CONSUMER, build_handlers
from artifacts.handlers.distributions import distribution_handlers
from artifacts.pool import RPM_READ, RPM_SOURCE, TASK_LOGS, WarmPool
from artifacts.pulp import PulpClient
from artifacts.settings import ArtifactsSettings
from shared.logs import setup_logging
from shared.messaging.runtime import build_app, create_runtime
from shared.settings import load_settings


def create_app(settings: ArtifactsSettings | None = None) -> FastStream:
    settings = settings or load_settings(ArtifactsSettings)
    runtime = create_runtime("artifacts", settings, pool_size=settings.db_pool_size)
    pulp = PulpClient.from_settings(settings)
    pool = WarmPool(
        pulp,
        runtime.sessions,
        {
            RPM_READ: settings.pulp_pool_rpm,
            RPM_SOURCE: settings.pulp_pool_rpm_src,
            TASK_LOGS: settings.pulp_pool_logs,
        },
        fill_concurrency=settings.pulp_pool_fill_concurrency,
        check_seconds=settings.pulp_pool_check_seconds,
    )
    runtime.on_start += [pulp.start, pool.start]
    runtime.on_stop += [pool.stop, pulp.close]
    context = Context(pulp, runtime.sessions, CONSUMER, pool=pool)
    routers = [
        build_handlers(runtime.topology, context),
        distribution_handlers(runtime.topology, Context(pulp, runtime.sessions, CONSUMER)),
    ]
    return build_app(runtime, routers)


def main() -> None:
    settings = load_settings(ArtifactsSettings)
    setup_logging(settings.log_level, settings.log_format)
    asyncio.run(create_app(settings).run())
