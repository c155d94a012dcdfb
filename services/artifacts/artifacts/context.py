"""What every handler of the artifacts service works with."""

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from artifacts.pool import WarmPool
from artifacts.pulp import PulpClient
from shared.db.session import SessionFactory


class KeyedLocks:
    """One asyncio lock per key, kept only while someone holds or awaits it.

    FastStream handles several messages of a queue at once; a redelivered event must wait
    for the first delivery to finish instead of repeating its Pulp work beside it.
    """

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


@dataclass
class Context:
    pulp: PulpClient
    sessions: SessionFactory
    consumer: str
    pool: WarmPool | None = None
    locks: KeyedLocks = field(default_factory=KeyedLocks)
