"""MQTT clients for tests: a publisher as the Gitea listener is, and a subscriber that crashes."""

import json
import threading
import time
import uuid
from copy import deepcopy
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

WEBHOOKS = Path(__file__).parent.parent / "integration" / "data" / "gitea"
ZERO_SHA = "0" * 40


def webhook(kind: str, **changes: Any) -> dict[str, Any]:
    """A fixture payload (branch_push, tag_push, new_repository, branch_deleted), adjusted.

    `repo="org/name"` moves it to another repository; `ref=`, `before=`, `after=` replace
    those fields.
    """
    payload: dict[str, Any] = json.loads((WEBHOOKS / f"{kind}.json").read_text())
    payload = deepcopy(payload)
    if full_name := changes.pop("repo", None):
        org, name = full_name.split("/")
        repo = payload["repository"]
        repo.update(
            name=name,
            full_name=full_name,
            clone_url=f"https://git.almalinux.org/{full_name}.git",
            html_url=f"https://git.almalinux.org/{full_name}",
            ssh_url=f"gitea@git.almalinux.org:{full_name}.git",
        )
        repo["owner"].update(login=org, username=org)
    payload.update(changes)
    return payload


def tag_push(full_name: str, tag: str) -> dict[str, Any]:
    return webhook("tag_push", repo=full_name, ref=f"refs/tags/{tag}")


def branch_push(full_name: str, branch: str) -> dict[str, Any]:
    return webhook("branch_push", repo=full_name, ref=f"refs/heads/{branch}")


def _client(client_id: str, *, clean_session: bool) -> mqtt.Client:
    return mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
    )


def publish(host: str, port: int, topic: str, *payloads: dict[str, Any] | bytes) -> None:
    """Publish at QoS 2 as the Gitea listener does, and wait until the broker has each one."""
    client = _client(f"test-publisher-{uuid.uuid4().hex[:8]}", clean_session=True)
    client.connect(host, port)
    client.loop_start()
    try:
        for payload in payloads:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            client.publish(topic, body, qos=2).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def drop_session(host: str, port: int, client_id: str) -> None:
    """Remove a persistent session from the broker, so test runs leave nothing behind."""
    client = _client(client_id, clean_session=True)
    client.connect(host, port)
    client.disconnect()


class CrashingSubscriber:
    """Takes messages under a client id and never acknowledges them, then dies without a word."""

    def __init__(self, host: str, port: int, client_id: str, topics: list[str], qos: int) -> None:
        self.received: list[bytes] = []
        self._subscribed = threading.Event()
        self._client = _client(client_id, clean_session=False)
        self._client.manual_ack_set(True)
        self._client.on_connect = lambda c, *_: c.subscribe([(t, qos) for t in topics])
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = lambda _c, _u, message: self.received.append(
            bytes(message.payload)
        )
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the crashing subscriber could not subscribe")

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        if len(self.received) < count:
            raise AssertionError(f"received {len(self.received)} of {count} messages")

    def crash(self) -> None:
        """Stop and drop the socket with no DISCONNECT, as a killed process does."""
        self._client.loop_stop()
        sock = self._client.socket()
        if sock is not None:
            sock.close()
