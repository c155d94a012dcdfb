"""Builds on new tags: MQTT -> bridge -> `gitea.tag` -> POST /api/v1/builds/, end to end."""

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aio_pika
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from faststream import FastStream

from gitea_bridge.settings import BuildRule
from shared.contracts.builds import BuildCreatePlatform
from tests.support.build_receiver import BuildReceiver
from tests.support.builds import create_platform, platform_body
from tests.support.gitea_bridge import BridgeEnv
from tests.support.mqtt_clients import ZERO_SHA, branch_push, tag_push
from tests.support.processes import free_port
from tests.support.servers import Servers
from tests.support.stack import TokenMaker, bearer
from tests.support.waiting import eventually

TOKEN = "a-service-token-the-builds-api-accepts"
RULES = [
    BuildRule(
        repositories=["rpms/*"],
        tags=["imports/c8/*"],
        platforms=[BuildCreatePlatform(name="AlmaLinux-8", arch_list=["x86_64", "aarch64"])],
    )
]


@pytest.fixture
def receiver() -> Iterator[BuildReceiver]:
    server = BuildReceiver()
    server.start()
    yield server
    server.stop()


def with_builds(bridge_env: BridgeEnv, address: str, token: str = TOKEN) -> None:
    bridge_env.configure(
        build_on_tags=True, build_rules=RULES, albs_address=address, albs_jwt_token=token
    )


async def test_a_new_tag_becomes_one_valid_build_request(
    bridge_env: BridgeEnv, receiver: BuildReceiver
) -> None:
    with_builds(bridge_env, receiver.address)
    receiver.fail_next(503)  # the API is briefly unavailable: the trigger tries again
    await bridge_env.start()
    tag = "imports/c8/bash-4.4.19-14.el8"
    deleted = tag_push("rpms/bash", "imports/c8/bash-4.4.19-12.el8")
    deleted.update(before="5e1f0a3b7c9d2e4f6a8b0c1d3e5f7a9b2c4d6e8f", after=ZERO_SHA)
    await bridge_env.publish(
        bridge_env.settings.mqtt_queue_topic_modified,
        tag_push("rpms/bash", tag),
        branch_push("rpms/bash", "c8"),  # a branch: no build
        deleted,  # a deleted tag: no build
        tag_push("modules/perl", "imports/c8/perl-1"),  # no rule for modules
        tag_push("rpms/bash", "c8-beta"),  # the rule's tag pattern does not match
        tag_push("rpms/bash", tag),  # the same push delivered again: no second build
        tag_push("rpms/zsh", "imports/c8/zsh-5.5.1-6.el8"),
    )

    async def both_built() -> bool:
        return len(receiver.received) >= 2

    await eventually(both_built)
    assert [r.body for r in receiver.received] == [
        {
            "platforms": [{"name": "AlmaLinux-8", "arch_list": ["x86_64", "aarch64"]}],
            "tasks": [{"url": "https://git.almalinux.org/rpms/bash.git", "git_ref": tag}],
            "linked_builds": [],
            "mock_options": {},
        },
        {
            "platforms": [{"name": "AlmaLinux-8", "arch_list": ["x86_64", "aarch64"]}],
            "tasks": [
                {
                    "url": "https://git.almalinux.org/rpms/zsh.git",
                    "git_ref": "imports/c8/zsh-5.5.1-6.el8",
                }
            ],
            "linked_builds": [],
            "mock_options": {},
        },
    ]
    assert {r.authorization for r in receiver.received} == {f"Bearer {TOKEN}"}
    assert receiver.refused == []


async def test_a_refused_build_goes_to_the_dead_letter_queue(
    bridge_env: BridgeEnv, receiver: BuildReceiver, servers: Servers
) -> None:
    with_builds(bridge_env, receiver.address)
    receiver.fail_next(403)
    await bridge_env.start()
    await bridge_env.publish(
        bridge_env.settings.mqtt_queue_topic_modified,
        tag_push("rpms/bash", "imports/c8/bash-1"),
        tag_push("rpms/bash", "imports/c8/bash-2"),
    )

    async def second_built() -> bool:
        return len(receiver.received) == 1

    await eventually(second_built)
    assert receiver.received[0].body["tasks"][0]["git_ref"] == "imports/c8/bash-2"
    dead = await _dead_letters(servers, bridge_env)
    assert [json.loads(m.body)["tag"] for m in dead] == ["imports/c8/bash-1"]


async def _dead_letters(
    servers: Servers, bridge_env: BridgeEnv
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(servers.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(bridge_env.topology.dead_letter_queue.name)
        messages = []
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            messages.append(message)
        return messages


@pytest.fixture
async def gateway_url(gateway: FastAPI, scheduler: FastStream) -> AsyncIterator[str]:
    """The in-process gateway (with the scheduler behind it) served on a loopback port."""
    port = free_port()
    config = uvicorn.Config(
        gateway, host="127.0.0.1", port=port, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await eventually(started)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await serving


@pytest.mark.usefixtures("clean_db")
async def test_a_new_tag_creates_a_real_build_through_the_gateway(
    bridge_env: BridgeEnv,
    gateway_url: str,
    api: httpx.AsyncClient,
    make_token: TokenMaker,
) -> None:
    admin = bearer(await make_token("root", admin=True))
    await create_platform(api, admin, platform_body("AlmaLinux-8", ["x86_64", "aarch64", "i686"]))
    with_builds(bridge_env, gateway_url, token=await make_token("gitea-bridge"))
    await bridge_env.start()
    tag = "imports/c8/bash-4.4.19-14.el8"
    await bridge_env.publish(
        bridge_env.settings.mqtt_queue_topic_unmodified, tag_push("rpms/bash", tag)
    )

    async def built() -> dict[str, Any] | None:
        page = (await api.get("/api/v1/builds/?pageNumber=1", headers=admin)).json()
        return page["builds"][0] if page["builds"] else None

    build = await eventually(built)
    assert build is not None
    assert build["user"]["username"] == "gitea-bridge"
    assert sorted(t["arch"] for t in build["tasks"]) == ["aarch64", "x86_64"]
    assert {(t["ref"]["url"], t["ref"]["git_ref"]) for t in build["tasks"]} == {
        ("https://git.almalinux.org/rpms/bash.git", tag)
    }
    assert {t["platform"]["name"] for t in build["tasks"]} == {"AlmaLinux-8"}
