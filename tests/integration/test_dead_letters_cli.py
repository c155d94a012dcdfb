"""`albs dead-letters list` and `albs dead-letters replay ID`, as an operator runs them."""

import asyncio
import uuid
from collections.abc import Iterator

import aio_pika
import pytest
from typer.testing import CliRunner

from auth.cli import app
from shared.contracts.builds import BuildReposReady
from shared.contracts.topology import Topology
from shared.messaging.declare import declare_all
from shared.messaging.poison import dead_letter_headers
from tests.support.servers import Servers


@pytest.fixture
def prefix(servers: Servers, amqp_prefix: str) -> Iterator[str]:
    """A prefix of its own: no consumer takes the replayed message away before we look."""
    name = f"{amqp_prefix}-cli{uuid.uuid4().hex[:4]}"
    asyncio.run(_declare(servers.amqp_url, Topology(name)))
    yield name
    asyncio.run(_delete(servers.amqp_url, Topology(name)))


async def _declare(amqp_url: str, topology: Topology) -> None:
    async with await aio_pika.connect(amqp_url) as connection:
        await declare_all(await connection.channel(), topology)


async def _delete(amqp_url: str, topology: Topology) -> None:
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        for queue in [*topology.event_queues(), *topology.rpc_queues(), topology.dead_letter_queue]:
            await channel.queue_delete(queue.name)


async def _dead_letter(amqp_url: str, topology: Topology, message_id: str) -> None:
    queue = topology.event_queue("scheduler", BuildReposReady).name
    headers = dead_letter_headers(
        {}, queue=queue, routing_key="build.repos_ready", error=KeyError("no build 7"), failures=5
    )
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.dead_letters.name)
        message = aio_pika.Message(
            b'{"build_id": 7}',
            message_id=message_id,
            headers=headers,
            content_type="application/json",
        )
        await exchange.publish(message, routing_key="")


async def _depth(amqp_url: str, name: str) -> int:
    async with await aio_pika.connect(amqp_url) as connection:
        queue = await (await connection.channel()).declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)


def test_list_shows_the_error_and_replay_sends_it_back_to_its_queue(
    servers: Servers, prefix: str
) -> None:
    topology = Topology(prefix)
    message_id = str(uuid.uuid4())
    asyncio.run(_dead_letter(servers.amqp_url, topology, message_id))
    env = {"ALBS_AMQP_URL": servers.amqp_url, "ALBS_AMQP_PREFIX": prefix}
    runner = CliRunner()

    listed = runner.invoke(app, ["dead-letters", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert message_id in listed.stdout
    assert "KeyError: 'no build 7'" in listed.stdout
    assert f"{prefix}.scheduler.build.repos_ready" in listed.stdout

    replayed = runner.invoke(app, ["dead-letters", "replay", message_id], env=env)
    assert replayed.exit_code == 0, replayed.output
    target = topology.event_queue("scheduler", BuildReposReady).name
    assert asyncio.run(_depth(servers.amqp_url, target)) == 1
    assert asyncio.run(_depth(servers.amqp_url, topology.dead_letter_queue.name)) == 0

    unknown = runner.invoke(app, ["dead-letters", "replay", str(uuid.uuid4())], env=env)
    assert unknown.exit_code != 0
    assert "no dead letter with id" in unknown.output
