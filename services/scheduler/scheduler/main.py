"""The scheduler process: plans builds, hands tasks to nodes, tracks leases."""

import asyncio

import uvloop
from faststream import FastStream

from scheduler.assignment import ClaimPool
from scheduler.handlers.build_node import build_node_handlers
from scheduler.handlers.builds import build_handlers
from scheduler.handlers.lifecycle import lifecycle_handlers
from scheduler.handlers.platforms import platform_handlers
from scheduler.handlers.signing import signing_handlers
from scheduler.idempotency import prune_keys
from scheduler.reaper import Reaper
from scheduler.settings import SchedulerSettings
from shared.db.session import in_transaction
from shared.logs import setup_logging
from shared.messaging.runtime import build_app, create_runtime
from shared.periodic import PeriodicJob
from shared.settings import load_settings


def create_app(settings: SchedulerSettings | None = None) -> FastStream:
    settings = settings or load_settings(SchedulerSettings)
    runtime = create_runtime("scheduler", settings, pool_size=settings.db_pool_size)
    topology, sessions = runtime.topology, runtime.sessions
    reaper = Reaper(sessions, settings.reaper_interval_seconds, settings.sign_max_attempts)
    claims = ClaimPool(settings.database_url, settings.claim_pool_size, settings.db_limits())
    key_pruner = PeriodicJob(
        "idempotency-key-pruner",
        lambda: in_transaction(sessions, prune_keys),
        settings.retention_interval_seconds,
    )
    runtime.jobs += [reaper.job, key_pruner]
    runtime.on_start.append(claims.start)
    runtime.on_stop.append(claims.stop)
    routers = [
        platform_handlers(topology, sessions),
        build_handlers(topology, sessions),
        build_node_handlers(topology, sessions, claims, settings),
        lifecycle_handlers(topology, sessions),
        signing_handlers(topology, sessions, settings),
    ]
    return build_app(runtime, routers)


def main() -> None:
    settings = load_settings(SchedulerSettings)
    setup_logging(settings.log_level)
    run = uvloop.run if settings.event_loop == "uvloop" else asyncio.run
    run(create_app(settings).run())
