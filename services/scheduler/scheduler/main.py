"""The scheduler process: plans builds, hands tasks to nodes, tracks leases."""

import asyncio
import logging

import uvloop
from faststream import FastStream

from scheduler.alts import AltsConfig, Dispatcher
from scheduler.assignment import ClaimPool
from scheduler.get_task_rpc import GetTaskConsumer
from scheduler.handlers.build_node import build_node_handlers
from scheduler.handlers.builds import build_handlers
from scheduler.handlers.lifecycle import lifecycle_handlers
from scheduler.handlers.platforms import platform_handlers
from scheduler.handlers.signing import signing_handlers
from scheduler.handlers.tests import test_handlers
from scheduler.idempotency import prune_keys
from scheduler.reaper import Reaper
from scheduler.settings import SchedulerSettings
from scheduler.testing import fail_overdue
from shared.db.queries.gauges import refresh_task_gauges
from shared.db.session import SessionFactory, in_transaction
from shared.logs import setup_logging
from shared.messaging.runtime import PREFETCH, ServiceRuntime, build_app, create_runtime
from shared.periodic import PeriodicJob
from shared.settings import load_settings

log = logging.getLogger(__name__)


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
    add_test_jobs(runtime, sessions, settings)
    get_task = GetTaskConsumer(
        settings.amqp_url,
        topology,
        claims,
        sessions,
        lease_seconds=settings.lease_seconds,
        prefetch=PREFETCH,
    )
    runtime.on_start += [claims.start, get_task.start]
    runtime.on_stop += [get_task.stop, claims.stop]
    runtime.collectors.append(lambda: in_transaction(sessions, refresh_task_gauges))
    routers = [
        platform_handlers(topology, sessions),
        build_handlers(topology, sessions),
        build_node_handlers(topology, sessions, settings),
        lifecycle_handlers(topology, sessions),
        signing_handlers(topology, sessions, settings),
        test_handlers(topology, sessions),
    ]
    return build_app(runtime, routers)


def add_test_jobs(
    runtime: ServiceRuntime, sessions: SessionFactory, settings: SchedulerSettings
) -> None:
    """The timeout of unanswered tests, and, when ALTS is configured, the dispatcher."""
    timeout = settings.test_result_timeout_seconds
    runtime.jobs.append(
        PeriodicJob(
            "test-timeout",
            lambda: in_transaction(sessions, fail_overdue, timeout),
            settings.test_timeout_interval_seconds,
        )
    )
    if not settings.alts_url:
        log.warning("ALBS_ALTS_URL is not set: test tasks are created but not sent to ALTS")
        return
    dispatcher = Dispatcher(
        sessions,
        AltsConfig(
            url=settings.alts_url,
            token=settings.alts_token.get_secret_value(),
            timeout_seconds=settings.alts_timeout_seconds,
            max_in_flight=settings.alts_max_in_flight,
            retry_base_seconds=settings.alts_retry_base_seconds,
            retry_max_seconds=settings.alts_retry_max_seconds,
        ),
    )
    runtime.on_start.append(dispatcher.start)
    runtime.on_stop.append(dispatcher.stop)
    runtime.jobs.append(
        PeriodicJob(
            "alts-dispatcher", dispatcher.dispatch_once, settings.alts_dispatch_interval_seconds
        )
    )


def main() -> None:
    settings = load_settings(SchedulerSettings)
    setup_logging(settings.log_level, settings.log_format)
    run = uvloop.run if settings.event_loop == "uvloop" else asyncio.run
    run(create_app(settings).run())
