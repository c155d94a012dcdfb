"""The scheduler process: plans builds, hands tasks to nodes, tracks leases."""

import asyncio

from faststream import FastStream

from scheduler.handlers.platforms import platform_handlers
from scheduler.settings import SchedulerSettings
from shared.logs import setup_logging
from shared.messaging.runtime import build_app, create_runtime
from shared.settings import load_settings


def create_app(settings: SchedulerSettings | None = None) -> FastStream:
    settings = settings or load_settings(SchedulerSettings)
    runtime = create_runtime("scheduler", settings)
    routers = [platform_handlers(runtime.topology, runtime.sessions)]
    return build_app(runtime, routers)


def main() -> None:
    settings = load_settings(SchedulerSettings)
    setup_logging(settings.log_level)
    asyncio.run(create_app(settings).run())
