"""The artifacts service: per-build Pulp repositories and the artifacts filed into them."""

import asyncio

from faststream import FastStream

from artifacts.settings import ArtifactsSettings
from shared.logs import setup_logging
from shared.messaging.runtime import build_app, create_runtime
from shared.settings import load_settings


def create_app(settings: ArtifactsSettings | None = None) -> FastStream:
    settings = settings or load_settings(ArtifactsSettings)
    runtime = create_runtime("artifacts", settings, pool_size=5)
    return build_app(runtime, routers=[])


def main() -> None:
    settings = load_settings(ArtifactsSettings)
    setup_logging(settings.log_level)
    asyncio.run(create_app(settings).run())
