"""The paho-mqtt client, run on its own network thread; callbacks hand over to asyncio."""

import asyncio
import logging

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gitea_bridge.settings import GiteaBridgeSettings

log = logging.getLogger(__name__)


class MqttConnection:
    def __init__(self, settings: GiteaBridgeSettings) -> None:
        self._settings = settings
        self._connected = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.mqtt_client_id,
            clean_session=settings.mqtt_queue_clean_session,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        if settings.mqtt_queue_username:
            password = settings.mqtt_queue_password
            self.client.username_pw_set(
                settings.mqtt_queue_username, password.get_secret_value() if password else None
            )
        self.client.reconnect_delay_set(min_delay=1, max_delay=60)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    async def connect(self, wait_seconds: float = 10.0) -> None:
        self.client.connect_async(self._settings.mqtt_queue_host, self._settings.mqtt_queue_port)
        self.client.loop_start()
        try:
            await asyncio.wait_for(self._connected.wait(), wait_seconds)
        except TimeoutError:
            self.client.loop_stop()
            raise ConnectionError(
                f"MQTT broker {self._settings.mqtt_queue_host}:{self._settings.mqtt_queue_port} "
                "did not accept the connection"
            ) from None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        log.info("mqtt: connected (%s)", reason)
        self._loop.call_soon_threadsafe(self._connected.set)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        log.warning("mqtt: disconnected (%s); paho reconnects with backoff", reason)
