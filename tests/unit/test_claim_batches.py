"""Claims that wait together go to PostgreSQL together (scheduler/assignment.py)."""

import asyncio

import pytest

from scheduler.assignment import Claim, Claimed, ClaimPool, Waiting, take_batch
from shared.errors import Unavailable

X86 = ["x86_64", "i686"]


def waiting(node: str, arches: list[str] = X86, lease: int = 300) -> Waiting:
    return Waiting(Claim(arches, node, lease), None, asyncio.get_running_loop().create_future())


def nodes(requests: list[Waiting]) -> list[str | None]:
    return [request.claim.node_id for request in requests]


async def test_a_batch_is_the_oldest_request_and_the_later_ones_of_its_kind() -> None:
    queue = [
        waiting("a"),
        waiting("b", ["aarch64"]),
        waiting("c"),
        waiting("d", X86, lease=60),
        waiting("e"),
    ]
    batch, rest = take_batch(queue, limit=10)
    assert nodes(batch) == ["a", "c", "e"]
    assert nodes(rest) == ["b", "d"]
    batch, rest = take_batch(rest, limit=10)
    assert (nodes(batch), nodes(rest)) == (["b"], ["d"])


async def test_a_batch_stops_at_its_limit_and_keeps_the_order_of_the_rest() -> None:
    batch, rest = take_batch([waiting(str(n)) for n in range(5)], limit=2)
    assert (nodes(batch), nodes(rest)) == (["0", "1"], ["2", "3", "4"])


class Pool(ClaimPool):
    """Claims answered without a database: the node id comes back as the body, and each
    statement's batch is recorded. Statements run until the gate opens (it starts closed),
    so the tests decide what arrives while they run, whatever the machine's speed."""

    def __init__(self, size: int, fail: int | None = None) -> None:
        super().__init__("postgresql+asyncpg://nowhere/none", size)
        self.batches: list[list[str | None]] = []
        self.fail = fail
        self.gate = asyncio.Event()

    async def _claim_batch(self, batch: list[Waiting]) -> list[Claimed | None]:
        self.batches.append(nodes(batch))
        await self.gate.wait()
        if len(self.batches) == self.fail:
            raise Unavailable("The database is unavailable; try again shortly.")
        return [(n, request.claim.node_id) for n, request in enumerate(batch)]


async def settle() -> None:
    """Let every task that can run do so (no timers involved)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def claims(pool: Pool, *names: str) -> list[asyncio.Task[Claimed | None]]:
    """Requests arriving together (as deliveries read from one socket read do)."""
    started = [asyncio.create_task(pool.claim(Claim(X86, name, 300))) for name in names]
    await settle()  # the runners have taken what they could and sent their statements
    return started


async def test_requests_arriving_during_a_statement_go_in_the_next_one() -> None:
    pool = Pool(size=1)
    first = await claims(pool, "n0", "n1")
    later = await claims(pool, "n2", "n3", "n4")
    pool.gate.set()
    answers = await asyncio.gather(*first, *later)
    assert [answer[1] for answer in answers if answer] == ["n0", "n1", "n2", "n3", "n4"]
    assert pool.batches == [["n0", "n1"], ["n2", "n3", "n4"]]


async def test_up_to_size_statements_run_at_once() -> None:
    pool = Pool(size=2)
    started = [*await claims(pool, "n0"), *await claims(pool, "n1"), *await claims(pool, "n2")]
    started += await claims(pool, "n3")
    assert pool.batches == [["n0"], ["n1"]]
    pool.gate.set()
    await asyncio.gather(*started)
    assert pool.batches == [["n0"], ["n1"], ["n2", "n3"]]


async def test_a_request_after_a_quiet_spell_is_answered_at_once() -> None:
    pool = Pool(size=1)
    pool.gate.set()
    assert await pool.claim(Claim(X86, "early", 300)) == (0, "early")
    # Straight on, in this task (wait_for would start a task and yield): the first runner has
    # ended, but its task's done-callbacks have not run yet.
    async with asyncio.timeout(1):
        assert await pool.claim(Claim(X86, "late", 300)) == (0, "late")


async def test_a_failed_statement_fails_its_batch_only() -> None:
    pool = Pool(size=1, fail=2)
    started = [*await claims(pool, "n0"), *await claims(pool, "n1", "n2")]
    pool.gate.set()
    results = await asyncio.gather(*started, return_exceptions=True)
    assert results[0] == (0, "n0")
    assert all(isinstance(result, Unavailable) for result in results[1:])
    assert await pool.claim(Claim(X86, "after", 300)) == (0, "after")


async def test_a_request_cancelled_while_waiting_leaves_the_others_answered() -> None:
    pool = Pool(size=1)
    [first] = await claims(pool, "n0")
    gone, kept = await claims(pool, "gone", "kept")
    gone.cancel()
    pool.gate.set()
    assert await first == (0, "n0")
    assert await kept == (1, "kept")
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_a_cancelled_runner_cancels_its_requests_rather_than_leave_them() -> None:
    pool = Pool(size=1)
    [request] = await claims(pool, "n0")
    [runner] = pool._runners
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(request, 1)
    pool.gate.set()
    assert await pool.claim(Claim(X86, "after", 300)) == (0, "after")
