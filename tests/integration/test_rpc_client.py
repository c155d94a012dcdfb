"""The gateway's RPC client against the real RabbitMQ."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
import pytest

from api_gateway.rpc_client import RpcClient
from shared.contracts.base import WireModel
from shared.contracts.messages import RpcReply, RpcSpec
from shared.contracts.topology import Topology
from shared.errors import NotFound, Unavailable
from tests.support.servers import Servers

CALLS = 50


class Echo(WireModel):
    n: int


ECHO = RpcSpec("test.echo", Echo, Echo)
NOBODY = RpcSpec("test.nobody_listens", Echo, Echo)


@pytest.fixture
async def client(servers: Servers, amqp_prefix: str) -> AsyncIterator[RpcClient]:
    client = RpcClient(servers.amqp_url, Topology(amqp_prefix), timeout=5)
    await client.start()
    yield client
    await client.stop()


@asynccontextmanager
async def serve_echo_when_all_arrived(servers: Servers, prefix: str) -> AsyncIterator[None]:
    """A responder that answers nothing until all CALLS requests are in flight at once.

    A client that sent its requests one at a time would never get an answer: the test then
    fails on the client's timeout. No clock is read.
    """
    connection = await aio_pika.connect(servers.amqp_url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=CALLS)
    queue = await channel.declare_queue(Topology(prefix).rpc_queue(ECHO).name, auto_delete=True)
    arrived: list[aio_pika.abc.AbstractIncomingMessage] = []
    all_arrived = asyncio.Event()

    async def on_request(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        arrived.append(message)
        if len(arrived) == CALLS:
            all_arrived.set()
        await all_arrived.wait()
        request = Echo.model_validate_json(message.body)
        reply = (
            RpcReply.success(Echo(n=request.n * 2))
            if request.n >= 0
            else RpcReply.failure(404, f"no echo for {request.n}")
        )
        await channel.default_exchange.publish(
            aio_pika.Message(
                reply.model_dump_json().encode(), correlation_id=message.correlation_id
            ),
            routing_key=message.reply_to or "",
        )
        await message.ack()

    await queue.consume(on_request)
    try:
        yield
    finally:
        await connection.close()


async def test_concurrent_calls_overlap_instead_of_queueing(
    client: RpcClient, servers: Servers, amqp_prefix: str
) -> None:
    async with serve_echo_when_all_arrived(servers, amqp_prefix):
        results = await asyncio.gather(*(client.call(ECHO, Echo(n=i)) for i in range(CALLS)))
    assert [r.n for r in results if r is not None] == [i * 2 for i in range(CALLS)]


async def test_error_reply_is_raised_with_its_status(
    client: RpcClient, servers: Servers, amqp_prefix: str
) -> None:
    async with serve_echo_when_all_arrived(servers, amqp_prefix):
        calls = [client.call(ECHO, Echo(n=i)) for i in range(CALLS - 1)]
        outcomes = await asyncio.gather(
            *calls, client.call(ECHO, Echo(n=-1)), return_exceptions=True
        )
    error = outcomes[-1]
    assert isinstance(error, NotFound)
    assert error.detail == "no echo for -1"


async def test_no_service_for_the_queue_is_a_clear_503(client: RpcClient) -> None:
    with pytest.raises(Unavailable, match=r"No service serves .*test\.nobody_listens"):
        await client.call(NOBODY, Echo(n=1))


async def test_a_queue_without_consumer_times_out_as_503(
    servers: Servers, amqp_prefix: str
) -> None:
    client = RpcClient(servers.amqp_url, Topology(amqp_prefix), timeout=0.5)
    await client.start()
    connection = await aio_pika.connect(servers.amqp_url)
    channel = await connection.channel()
    name = Topology(amqp_prefix).rpc_queue(NOBODY).name
    queue = await channel.declare_queue(name, auto_delete=False)
    try:
        with pytest.raises(
            Unavailable, match=r"No test\.nobody_listens handler answered within 0\.5 s"
        ):
            await client.call(NOBODY, Echo(n=1))
        # The request expires in the queue: a responder starting later never acts on it.
        await asyncio.sleep(0.6)
        assert await queue.get(fail=False) is None
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await connection.close()
        await client.stop()
