"""Webhooks through the real Mosquitto into the project cache and onto RabbitMQ."""

import asyncio
import json
import logging
from pathlib import Path

import aio_pika
import pytest

from tests.support.gitea_bridge import BridgeEnv, received
from tests.support.mqtt_clients import (
    WEBHOOKS,
    ZERO_SHA,
    CrashingSubscriber,
    tag_push,
    webhook,
)
from tests.support.processes import free_port, service
from tests.support.waiting import eventually


def body(message: aio_pika.abc.AbstractIncomingMessage) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(message.body)
    return parsed


async def test_pushes_on_both_topics_update_the_cache_and_are_published(
    bridge_env: BridgeEnv, gitea_events: aio_pika.abc.AbstractQueue
) -> None:
    settings = bridge_env.settings
    await bridge_env.start()
    unmodified, modified = settings.mqtt_queue_topic_unmodified, settings.mqtt_queue_topic_modified
    await bridge_env.publish(unmodified, webhook("branch_push"))
    await bridge_env.publish(modified, webhook("tag_push"), webhook("new_repository"))
    await bridge_env.publish(unmodified, webhook("tag_push"))  # the same tag again
    first = await received(gitea_events, 4)

    bash = await bridge_env.cache.get("rpms/bash")
    assert bash is not None
    assert bash.model_dump() == {
        "name": "bash",
        "clone_url": "https://git.almalinux.org/rpms/bash.git",
        "tags": ["imports/c8/bash-4.4.19-14.el8"],
        "branches": ["c8"],
    }
    module = await bridge_env.cache.get("modules/perl-App-cpanminus")
    assert module is not None
    assert (module.tags, module.branches) == ([], ["a8"])

    assert [m.routing_key for m in first] == ["gitea.push", "gitea.tag", "gitea.push", "gitea.tag"]
    assert all(m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT for m in first)
    assert first[1].message_id == first[3].message_id  # the same push, the same event id
    assert len({first[0].message_id, first[1].message_id, first[2].message_id}) == 3
    tag = body(first[1])
    assert tag["full_name"] == "rpms/bash"
    assert tag["tag"] == "imports/c8/bash-4.4.19-14.el8"
    assert tag["clone_url"] == "https://git.almalinux.org/rpms/bash.git"
    assert tag["deleted"] is False
    assert body(first[2])["commits"] == [
        "f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d",
        "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
    ]
    assert "secret" not in tag


async def test_a_deleted_branch_or_tag_leaves_the_cache(
    bridge_env: BridgeEnv, gitea_events: aio_pika.abc.AbstractQueue
) -> None:
    topic = bridge_env.settings.mqtt_queue_topic_modified
    await bridge_env.start()
    created = webhook("branch_push", ref="refs/heads/c8-stream-rhel")
    await bridge_env.publish(topic, created, webhook("branch_push"), webhook("tag_push"))
    await received(gitea_events, 3)
    tag_deleted = webhook("tag_push", before="5e1f0a3b7c9d2e4f6a8b0c1d3e5f7a9b2c4d6e8f")
    tag_deleted["after"] = ZERO_SHA
    await bridge_env.publish(topic, webhook("branch_deleted"), tag_deleted)
    deletions = await received(gitea_events, 2)

    bash = await bridge_env.cache.get("rpms/bash")
    assert bash is not None
    assert (bash.branches, bash.tags) == (["c8"], [])
    assert [body(m)["deleted"] for m in deletions] == [True, True]
    assert body(deletions[0])["branch"] == "c8-stream-rhel"


async def test_events_published_while_the_bridge_is_down_arrive_when_it_returns(
    bridge_env: BridgeEnv,
) -> None:
    settings = bridge_env.settings
    app = await bridge_env.start()
    await bridge_env.stop(app)
    tags = [f"imports/c8/bash-4.4.19-{n}.el8" for n in range(20)]
    await bridge_env.publish(
        settings.mqtt_queue_topic_unmodified, *(tag_push("rpms/bash", t) for t in tags[:10])
    )
    await bridge_env.publish(
        settings.mqtt_queue_topic_modified, *(tag_push("rpms/bash", t) for t in tags[10:])
    )
    await bridge_env.start()

    async def all_tags() -> bool:
        return await bridge_env.tags("rpms/bash") == sorted(tags)

    await eventually(all_tags)


async def test_a_malformed_payload_is_dropped_and_the_next_one_processed(
    bridge_env: BridgeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    topic = bridge_env.settings.mqtt_queue_topic_modified
    await bridge_env.start()
    no_repository = webhook("tag_push")
    del no_repository["repository"]
    bad_name = tag_push("rpms/bash", "x")
    bad_name["repository"]["full_name"] = "no slash"
    with caplog.at_level(logging.WARNING, logger="gitea_bridge"):
        await bridge_env.publish(
            topic, b"{not json", b"[]", no_repository, bad_name, tag_push("rpms/bash", "good")
        )

        async def good_tag() -> bool:
            return await bridge_env.tags("rpms/bash") == ["good"]

        await eventually(good_tag)
    dropped = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(dropped) == 4
    assert all(topic in line for line in dropped)


async def test_a_message_whose_processing_fails_is_not_lost(
    bridge_env: BridgeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """QoS 1: processing fails (Redis unreachable), the bridge stops, the next one processes it."""
    bridge_env.configure(mqtt_queue_qos=1)
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    broken = await bridge_env.start(redis_url=unreachable, shutdown_drain_seconds=0.5)
    with caplog.at_level(logging.WARNING, logger="gitea_bridge"):
        await bridge_env.publish(
            bridge_env.settings.mqtt_queue_topic_unmodified, tag_push("rpms/bash", "v1")
        )

        async def retried() -> bool:
            return any("retrying" in r.getMessage() for r in caplog.records)

        await eventually(retried)
    await bridge_env.stop(broken)
    assert await bridge_env.tags("rpms/bash") == []
    await bridge_env.start()

    async def processed() -> bool:
        return await bridge_env.tags("rpms/bash") == ["v1"]

    await eventually(processed)


async def test_qos1_messages_of_a_crashed_process_are_delivered_again(
    bridge_env: BridgeEnv,
) -> None:
    settings = bridge_env.configure(mqtt_queue_qos=1)
    crashed = CrashingSubscriber(
        settings.mqtt_queue_host,
        settings.mqtt_queue_port,
        settings.mqtt_client_id,
        settings.topics,
        qos=1,
    )
    tags = [f"v{n}" for n in range(5)]
    await bridge_env.publish(
        settings.mqtt_queue_topic_modified, *(tag_push("rpms/bash", t) for t in tags)
    )
    crashed.wait_for(5)
    crashed.crash()
    await bridge_env.start()

    async def all_tags() -> bool:
        return await bridge_env.tags("rpms/bash") == tags

    await eventually(all_tags)


async def test_qos2_delivery_continues_after_a_crash_with_messages_in_flight(
    bridge_env: BridgeEnv,
) -> None:
    """A crashed QoS 2 receiver leaves releases the broker re-sends; the bridge completes them.

    The crashed process's in-flight messages are gone (paho keeps no record on disk, see
    docs/decisions/0005); what matters is that the broker's window is not blocked for good.
    """
    settings = bridge_env.configure(mqtt_queue_qos=2)
    crashed = CrashingSubscriber(
        settings.mqtt_queue_host,
        settings.mqtt_queue_port,
        settings.mqtt_client_id,
        settings.topics,
        qos=2,
    )
    in_flight = [tag_push("rpms/bash", f"lost-{n}") for n in range(25)]
    await bridge_env.publish(settings.mqtt_queue_topic_modified, *in_flight)
    crashed.wait_for(20)  # Mosquitto's default in-flight window
    crashed.crash()
    await bridge_env.start()
    await bridge_env.publish(
        settings.mqtt_queue_topic_unmodified, tag_push("rpms/bash", "after-crash")
    )

    async def after_crash() -> bool:
        return "after-crash" in await bridge_env.tags("rpms/bash")

    await eventually(after_crash)


async def test_the_process_configured_by_the_original_yaml_file_processes_webhooks(
    bridge_env: BridgeEnv, service_env: dict[str, str], tmp_path: Path
) -> None:
    settings = bridge_env.settings
    legacy = (WEBHOOKS / "albs-gitea-listener-config.yaml").read_text()
    config = tmp_path / "albs-gitea-listener-config.yaml"
    config.write_text(
        legacy.replace("mosquitto", settings.mqtt_queue_host)
        .replace("gitea-webhooks-unmodified", settings.mqtt_queue_topic_unmodified)
        .replace("gitea-webhooks-modified", settings.mqtt_queue_topic_modified)
        .replace("albs_gitea_listener", settings.mqtt_client_id)
    )
    env = {
        **service_env,
        "ALBS_AMQP_PREFIX": settings.amqp_prefix,
        "ALBS_REDIS_PREFIX": settings.redis_prefix,
        "ALBS_GITEA_BRIDGE_CONFIG": str(config),
    }
    process = service("gitea-bridge", "albs-gitea-bridge", env, tmp_path)
    process.start()
    try:
        await asyncio.to_thread(process.wait_ready)
        await bridge_env.publish(settings.mqtt_queue_topic_modified, tag_push("rpms/bash", "v1"))

        async def processed() -> bool:
            return await bridge_env.tags("rpms/bash") == ["v1"]

        await eventually(processed)
    finally:
        code = await asyncio.to_thread(process.stop)
    assert code == 0, process.log()[-2000:]
    assert f"subscribed to {settings.mqtt_queue_topic_modified} (QoS 2)" in process.log()
    assert "Traceback" not in process.log()
