"""The API gateway: validates, authenticates, reads; every command becomes a message."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from redis.asyncio import Redis

from api_gateway import observability
from api_gateway.errors import install_error_handlers
from api_gateway.fast_path import GatewayApp
from api_gateway.idle_poll import RunnableCheck
from api_gateway.observability import ObserveRequests
from api_gateway.routes import (
    build_node,
    builds,
    distributions,
    health,
    platforms,
    projects,
    queue,
    signing,
    tests,
    users,
)
from api_gateway.rpc_client import RpcClient
from api_gateway.settings import GatewaySettings
from api_gateway.user_directory import UserDirectory
from shared.contracts.topology import RPCS, Topology
from shared.db.session import create_engine, create_session_factory
from shared.logs import setup_logging
from shared.settings import load_settings

log = logging.getLogger("api_gateway")


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or load_settings(GatewaySettings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            limits=settings.db_limits(),
            application_name="albs-gateway",
        )
        app.state.settings = settings
        app.state.sessions = create_session_factory(engine)
        app.state.runnable = RunnableCheck(
            settings.database_url, settings.idle_check_pool_size, settings.db_limits()
        )
        app.state.users = UserDirectory(
            app.state.sessions, settings.database_url, ttl=settings.auth_cache_seconds
        )
        app.state.redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )
        app.state.rpc = RpcClient(
            settings.amqp_url,
            Topology(settings.amqp_prefix),
            timeout=settings.rpc_timeout_seconds,
            watched=RPCS,  # /healthz and fail-fast watch their consumers
            check_interval=settings.rpc_consumer_check_seconds,
        )
        await app.state.users.start()
        await app.state.rpc.start()
        log.info("gateway ready on http://%s:%s", settings.host, settings.port)
        try:
            yield
        finally:
            await app.state.rpc.stop()
            await app.state.runnable.stop()
            await app.state.users.stop()
            await app.state.redis.aclose()
            await engine.dispose()
            log.info("gateway stopped")

    app = GatewayApp(
        title="ALBS control plane API",
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
    )
    install_error_handlers(app)
    app.add_middleware(ObserveRequests)
    app.include_router(observability.router)
    app.include_router(health.router)
    app.include_router(platforms.router)
    app.include_router(builds.router)
    app.include_router(build_node.router)
    app.include_router(users.router)
    app.include_router(projects.router)
    app.include_router(queue.router)
    app.include_router(signing.keys)
    app.include_router(signing.tasks)
    app.include_router(tests.router)
    app.include_router(distributions.router)
    return app


def main() -> None:
    settings = load_settings(GatewaySettings)
    setup_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_keep_alive=settings.keep_alive_seconds,
        log_config=None,  # the root logger's format (shared/logs.py) for uvicorn's lines too
    )
