"""Benchmark the outbox relay on the local servers (see bench/README.md).

Works on a scratch database and AMQP prefix of its own (both removed at the end):

1. **steady**: a writer commits `--rate` events per second for `--seconds`, one event per
   transaction (as every get_task claim does), while `--relays` relays publish them;
   prints the achieved rate and the commit-to-published lag (p50/p99/max);
2. **burst**: `--burst` events are committed at once; prints how fast the relays drain them.

Every event goes to a queue (a routing key somebody consumes, so the publish is mandatory);
the script counts the copies that arrived and the distinct message ids (duplicates must be 0).
"""

import argparse
import asyncio
import secrets
import time

import aio_pika
from faststream.rabbit import RabbitBroker
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.contracts.builds import BuildReposReady
from shared.contracts.topology import Topology
from shared.db import migrate
from shared.db.session import SessionFactory, create_engine, create_session_factory, unit_of_work
from shared.messaging.declare import declare_all
from shared.messaging.outbox import NOTIFY_CHANNEL, OutboxRelay, RelaySettings
from shared.settings import CommonSettings

INSERT_ONE = text(
    "INSERT INTO outbox (message_id, routing_key, payload) "
    "VALUES (gen_random_uuid(), 'build.repos_ready', CAST(:payload AS jsonb)); "
)
NOTIFY = text(f"NOTIFY {NOTIFY_CHANNEL}")


async def write_steady(sessions: SessionFactory, rate: float, seconds: float, writers: int) -> int:
    """`writers` concurrent writers, one event per transaction, `rate` events/s in total."""
    written, started = 0, time.monotonic()

    async def writer() -> None:
        nonlocal written
        while (elapsed := time.monotonic() - started) < seconds:
            if written >= int(elapsed * rate) + 1:
                await asyncio.sleep(0.002)
                continue
            written += 1
            async with unit_of_work(sessions) as session:
                await session.execute(INSERT_ONE, {"payload": f'{{"build_id": {written}}}'})
                await session.execute(NOTIFY)

    await asyncio.gather(*(writer() for _ in range(writers)))
    return written


async def write_burst(sessions: SessionFactory, count: int) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(
            text(
                "INSERT INTO outbox (message_id, routing_key, payload) "
                "SELECT gen_random_uuid(), 'build.repos_ready', jsonb_build_object('build_id', n) "
                "FROM generate_series(1, :count) AS n"
            ),
            {"count": count},
        )
        await session.execute(NOTIFY)


async def wait_published(sessions: SessionFactory, limit_seconds: float = 300.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_seconds:
        async with sessions() as session:
            left = await session.scalar(
                text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            )
        if not left:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise SystemExit(f"the relays did not publish everything within {limit_seconds} s")


async def lags(sessions: SessionFactory) -> list[float]:
    async with sessions() as session:
        rows = await session.execute(
            text("SELECT extract(epoch FROM published_at - created_at) FROM outbox")
        )
        return sorted(float(r[0]) * 1000 for r in rows)


async def count_delivered(amqp_url: str, queue_name: str) -> tuple[int, int]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.get_queue(queue_name)
        ids: list[str] = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            ids.append(message.message_id or "")
        return len(ids), len(set(ids))


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


async def run(args: argparse.Namespace) -> None:
    settings = CommonSettings()
    tag = secrets.token_hex(3)
    url = make_url(settings.database_url).set(database=f"albs_bench_relay_{tag}")
    database_url = url.render_as_string(hide_password=False)
    topology = Topology(f"bench-relay-{tag}")
    await migrate.create_database(database_url)
    await asyncio.to_thread(migrate.upgrade, database_url)
    engine = create_engine(database_url, pool_size=args.writers + 2 * args.relays)
    sessions = create_session_factory(engine)
    brokers = [RabbitBroker(settings.amqp_url) for _ in range(args.relays)]
    relays = [
        OutboxRelay(
            b,
            topology,
            database_url=database_url,
            settings=RelaySettings(batch_size=args.batch),
        )
        for b in brokers
    ]
    queue = topology.event_queue("scheduler", BuildReposReady).name
    try:
        for broker in brokers:
            await broker.start()
        await declare_all((await brokers[0].declare_exchange(topology.events)).channel, topology)
        for relay in relays:
            await relay.start()

        written = 0
        if args.seconds > 0:
            written = await write_steady(sessions, args.rate, args.seconds, args.writers)
            await wait_published(sessions)
            lag = await lags(sessions)
            print(
                f"steady: {written} events in {args.seconds:g} s ({written / args.seconds:.0f}/s,"
                f" one per transaction), {args.relays} relay(s): commit->published lag "
                f"p50 {pct(lag, 0.5):.1f} ms, p99 {pct(lag, 0.99):.1f} ms, max {lag[-1]:.1f} ms"
            )
            async with unit_of_work(sessions) as session:
                await session.execute(text("TRUNCATE outbox"))

        started = time.monotonic()
        await write_burst(sessions, args.burst)
        committed, cpu = time.monotonic(), time.process_time()
        done = await wait_published(sessions)
        cpu_ms = (time.process_time() - cpu) * 1000 / args.burst
        print(
            f"burst: {args.burst} events committed in {committed - started:.1f} s, drained in "
            f"{done - committed:.1f} s = {args.burst / (done - committed):.0f} events/s; "
            f"relay CPU {cpu_ms:.2f} ms per event in this process"
        )
        copies, distinct = await count_delivered(settings.amqp_url, queue)
        total = written + args.burst
        print(
            f"delivered: {copies} copies of {distinct} distinct events (written {total}); "
            f"duplicates {copies - distinct}"
        )
    finally:
        for relay in relays:
            await relay.stop()
        connection = await aio_pika.connect(settings.amqp_url)
        async with connection:
            channel = await connection.channel()
            for q in [*topology.event_queues(), *topology.rpc_queues(), topology.dead_letter_queue]:
                await channel.queue_delete(q.name)
            for exchange in (topology.events, topology.dead_letters):
                await channel.exchange_delete(exchange.name)
        for broker in brokers:
            await broker.stop()
        await engine.dispose()
        await migrate.drop_database(database_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=400.0, help="events per second (steady)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=20_000)
    parser.add_argument("--relays", type=int, default=1)
    parser.add_argument("--writers", type=int, default=8, help="concurrent writer transactions")
    parser.add_argument("--batch", type=int, default=500)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
