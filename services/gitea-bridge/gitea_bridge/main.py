"""The gitea bridge: Gitea webhook events from MQTT into the project cache and RabbitMQ."""

import asyncio
import logging

from faststream import FastStream
from faststream.rabbit import RabbitBroker

from gitea_bridge.mqtt import MqttConnection
from gitea_bridge.settings import GiteaBridgeSettings
from shared.logs import setup_logging
from shared.settings import load_settings

log = logging.getLogger("gitea_bridge")


def create_app(settings: GiteaBridgeSettings | None = None) -> FastStream:
    settings = settings or load_settings(GiteaBridgeSettings)
    broker = RabbitBroker(settings.amqp_url, logger=logging.getLogger("gitea_bridge.broker"))
    state: dict[str, MqttConnection] = {}

    async def after_startup() -> None:
        state["mqtt"] = MqttConnection(settings)
        await state["mqtt"].connect()
        log.info("gitea-bridge ready (prefix %s)", settings.amqp_prefix)

    async def on_shutdown() -> None:
        if "mqtt" in state:
            state["mqtt"].close()
        log.info("gitea-bridge stopped")

    return FastStream(broker, logger=log, after_startup=[after_startup], on_shutdown=[on_shutdown])


def main() -> None:
    settings = load_settings(GiteaBridgeSettings)
    setup_logging(settings.log_level)
    asyncio.run(create_app(settings).run())
