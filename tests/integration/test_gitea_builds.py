"""Builds on new tags: MQTT -> bridge -> `gitea.tag` -> create-build RPC -> the real scheduler."""

import json

import aio_pika
import httpx
import pytest
from faststream import FastStream
from sqlalchemy import select

from auth.users import ensure_user
from gitea_bridge.settings import BuildRule
from shared.contracts.builds import BuildCreatePlatform
from shared.db.models import Build, BuildTask, BuildTaskRef, User, UserKind
from shared.db.session import SessionFactory, in_transaction
from shared.messaging.poison import ERROR_HEADER, QUEUE_HEADER
from tests.support.builds import create_platform, platform_body
from tests.support.gitea_bridge import BridgeEnv
from tests.support.mqtt_clients import ZERO_SHA, branch_push, tag_push
from tests.support.servers import Servers
from tests.support.stack import TokenMaker, bearer
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("clean_db")

RULES = [
    BuildRule(
        repositories=["rpms/*"],
        tags=["imports/c8/*"],
        platforms=[BuildCreatePlatform(name="AlmaLinux-8", arch_list=["x86_64", "aarch64"])],
    ),
    BuildRule(
        repositories=["broken/*"],
        platforms=[BuildCreatePlatform(name="NoSuchPlatform", arch_list=["x86_64"])],
    ),
]


@pytest.fixture
async def platform(
    clean_db: None, api: httpx.AsyncClient, make_token: TokenMaker, scheduler: FastStream
) -> None:
    admin = bearer(await make_token("root", admin=True))
    await create_platform(api, admin, platform_body("AlmaLinux-8", ["x86_64", "aarch64", "i686"]))


async def service_account(sessions: SessionFactory) -> None:
    await in_transaction(
        sessions,
        ensure_user,
        "gitea-bridge",
        email="bridge@localhost",
        kind=UserKind.SERVICE,
        admin=False,
    )


def on_the_schedulers_prefix(bridge_env: BridgeEnv, amqp_prefix: str) -> None:
    bridge_env.configure(build_on_tags=True, build_rules=RULES, amqp_prefix=amqp_prefix)


async def builds_of(sessions: SessionFactory) -> list[tuple[str, list[tuple[str, str]]]]:
    """(owner, sorted (arch, git_ref) of its tasks) of every build, oldest first."""
    async with sessions() as session:
        rows = await session.execute(
            select(Build.id, User.username, BuildTask.arch, BuildTaskRef.git_ref)
            .join(User, User.id == Build.user_id)
            .join(BuildTask, BuildTask.build_id == Build.id)
            .join(BuildTaskRef, BuildTaskRef.id == BuildTask.ref_id)
            .order_by(Build.id)
        )
        builds: dict[int, tuple[str, list[tuple[str, str]]]] = {}
        for build_id, owner, arch, ref in rows:
            builds.setdefault(build_id, (owner, []))[1].append((arch, str(ref)))
    return [(owner, sorted(tasks)) for owner, tasks in builds.values()]


@pytest.mark.usefixtures("platform")
async def test_new_tags_become_builds_once_through_the_schedulers_rpc(
    bridge_env: BridgeEnv, sessions: SessionFactory, amqp_prefix: str
) -> None:
    await service_account(sessions)
    on_the_schedulers_prefix(bridge_env, amqp_prefix)
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

    async def both_built() -> list[tuple[str, list[tuple[str, str]]]] | None:
        found = await builds_of(sessions)
        return found if len(found) >= 2 else None

    assert await eventually(both_built) == [
        ("gitea-bridge", [("aarch64", tag), ("x86_64", tag)]),
        (
            "gitea-bridge",
            [("aarch64", "imports/c8/zsh-5.5.1-6.el8"), ("x86_64", "imports/c8/zsh-5.5.1-6.el8")],
        ),
    ]
    # The repeated push, forgotten by the bridge's Redis memo, still builds once: the
    # scheduler answers its idempotency key with the first build.
    async for key in bridge_env.redis.scan_iter(
        match=f"{bridge_env.settings.redis_prefix}:*built*"
    ):
        await bridge_env.redis.delete(key)
    await bridge_env.publish(
        bridge_env.settings.mqtt_queue_topic_modified, tag_push("rpms/bash", tag)
    )
    await eventually(lambda: _memo_written(bridge_env))
    assert len(await builds_of(sessions)) == 2


async def _memo_written(bridge_env: BridgeEnv) -> bool:
    keys = [
        k
        async for k in bridge_env.redis.scan_iter(
            match=f"{bridge_env.settings.redis_prefix}:*built*"
        )
    ]
    return len(keys) == 1


@pytest.mark.usefixtures("platform")
async def test_a_refused_build_is_dead_lettered_with_its_error_and_the_next_one_builds(
    bridge_env: BridgeEnv, sessions: SessionFactory, servers: Servers, amqp_prefix: str
) -> None:
    await service_account(sessions)
    on_the_schedulers_prefix(bridge_env, amqp_prefix)
    await bridge_env.start()
    await bridge_env.publish(
        bridge_env.settings.mqtt_queue_topic_modified,
        tag_push("broken/bash", "v1"),  # its rule names a platform that does not exist
        tag_push("rpms/bash", "imports/c8/bash-2"),
    )

    async def built() -> bool:
        return len(await builds_of(sessions)) == 1

    await eventually(built)
    dead = await eventually(lambda: _dead_letters(servers, bridge_env))
    assert [json.loads(m.body)["tag"] for m in dead] == ["v1"]
    headers = dead[0].headers or {}
    assert headers[QUEUE_HEADER] == f"{amqp_prefix}.gitea-bridge.gitea.tag"
    assert "404" in str(headers[ERROR_HEADER])
    assert "NoSuchPlatform" in str(headers[ERROR_HEADER])


async def test_without_the_service_account_the_build_is_refused(
    bridge_env: BridgeEnv, servers: Servers, amqp_prefix: str, scheduler: FastStream
) -> None:
    on_the_schedulers_prefix(bridge_env, amqp_prefix)
    await bridge_env.start()
    await bridge_env.publish(
        bridge_env.settings.mqtt_queue_topic_modified, tag_push("rpms/bash", "imports/c8/x-1")
    )
    dead = await eventually(lambda: _dead_letters(servers, bridge_env))
    assert "albs token create --service gitea-bridge" in str((dead[0].headers or {})[ERROR_HEADER])


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
