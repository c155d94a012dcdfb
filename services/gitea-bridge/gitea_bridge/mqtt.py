"""The paho-mqtt client on its own network thread; every message is handed over to asyncio.

Acknowledgements are manual: a message is acknowledged (PUBACK for QoS 1, PUBCOMP for QoS 2)
only after it was processed, so a failing message holds its slot in the broker's in-flight
window instead of vanishing. docs/decisions/0005-gitea-bridge.md says what each QoS can and
cannot survive.
"""

import asyncio
import logging
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from gitea_bridge.settings import GiteaBridgeSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MqttDelivery:
    topic: str
    payload: bytes
    mid: int
    qos: int


class _Client(mqtt.Client):
    """paho, plus completing a QoS 2 release it has no record of.

    After a restart the broker re-sends PUBREL for messages the previous process had received
    but not completed. paho in manual-ack mode answers those with nothing, so each one occupies
    a slot of the broker's in-flight window for good, and after a few restarts delivery stops.
    The payload of such a message was lost with the previous process (paho keeps no record on
    disk); completing it frees the slot. A release of a message this process is still working
    on (re-sent after a reconnect) is left alone: its acknowledgement completes it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.in_progress: set[int] = set()
        self.in_progress_lock = threading.Lock()

    def _handle_pubrel(self) -> MQTTErrorCode:
        packet = bytes(self._in_packet["packet"])
        mid = struct.unpack("!H", packet[:2])[0] if len(packet) >= 2 else None
        with self._in_message_mutex:
            known = mid in self._in_messages
        with self.in_progress_lock:
            ours = mid in self.in_progress
        result: MQTTErrorCode = super()._handle_pubrel()
        if mid is not None and not known and not ours and self._manual_ack:
            log.warning("mqtt: completing QoS 2 message %s left by a previous run", mid)
            return self._send_pubcomp(mid)
        return result


class MqttConnection:
    def __init__(
        self, settings: GiteaBridgeSettings, deliver: Callable[[MqttDelivery], None]
    ) -> None:
        self._settings = settings
        self._deliver = deliver
        self._connected = asyncio.Event()
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self.client = _Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.mqtt_client_id,
            clean_session=settings.mqtt_queue_clean_session,
            protocol=MQTTProtocolVersion.MQTTv311,
            manual_ack=True,
        )
        if settings.mqtt_queue_username:
            password = settings.mqtt_queue_password
            self.client.username_pw_set(
                settings.mqtt_queue_username, password.get_secret_value() if password else None
            )
        self.client.reconnect_delay_set(min_delay=1, max_delay=settings.mqtt_reconnect_max_seconds)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

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

    def ack(self, delivery: MqttDelivery) -> None:
        if delivery.qos > 0:
            self.client.ack(delivery.mid, delivery.qos)
        with self.client.in_progress_lock:
            self.client.in_progress.discard(delivery.mid)

    def stop_reading(self) -> None:
        """Stop the network thread: nothing new arrives, acks are still written directly."""
        self._closing = True
        self.client.loop_stop()

    def close(self) -> None:
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        if reason.is_failure:
            log.error("mqtt: the broker refused the connection: %s", reason)
            return
        qos = self._settings.mqtt_queue_qos
        log.info("mqtt: connected (session present: %s)", flags.session_present)
        # Subscribing on every connect also restores subscriptions after a reconnect.
        client.subscribe([(topic, qos) for topic in self._settings.topics])
        self._loop.call_soon_threadsafe(self._connected.set)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: object,
    ) -> None:
        for topic, reason in zip(self._settings.topics, reasons, strict=False):
            if reason.is_failure:
                log.error("mqtt: subscription to %s refused: %s", topic, reason)
            else:
                log.info("mqtt: subscribed to %s (QoS %s)", topic, reason.value)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        if self._closing:
            log.info("mqtt: disconnected")
        else:
            log.warning("mqtt: disconnected (%s); paho reconnects with backoff", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        delivery = MqttDelivery(message.topic, bytes(message.payload), message.mid, message.qos)
        if message.qos == 2:
            with self.client.in_progress_lock:
                self.client.in_progress.add(message.mid)
        try:
            self._loop.call_soon_threadsafe(self._deliver, delivery)
        except RuntimeError:
            log.warning("mqtt: message %s arrived after shutdown; left unacknowledged", message.mid)
