"""The auth service: users and their tokens (GitHub login arrives with its own issue)."""

import asyncio

from faststream import FastStream

from auth.settings import AuthSettings
from shared.logs import setup_logging
from shared.messaging.runtime import build_app, create_runtime
from shared.settings import load_settings


def create_app(settings: AuthSettings | None = None) -> FastStream:
    settings = settings or load_settings(AuthSettings)
    runtime = create_runtime("auth", settings, pool_size=5)
    return build_app(runtime, routers=[])


def main() -> None:
    settings = load_settings(AuthSettings)
    setup_logging(settings.log_level)
    asyncio.run(create_app(settings).run())
