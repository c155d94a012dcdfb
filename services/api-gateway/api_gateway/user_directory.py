"""The users behind tokens, cached so the token check costs no PostgreSQL round trip.

An entry lives `ttl` seconds at most. Any change to a user row (revocation, admin rights,
deletion) is announced by a PostgreSQL trigger (`NOTIFY albs_users, '<id>'`, migration
0005) and evicts the entry at once on every gateway process; while the listening
connection is down, nothing is cached, so a missed notice can never keep a revoked token
alive. See docs/decisions/0011-request-path.md.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import asyncpg
from sqlalchemy import select

from shared.db.models import User
from shared.db.session import SessionFactory, asyncpg_params

log = logging.getLogger(__name__)

USERS_CHANNEL = "albs_users"
RECONNECT_SECONDS = 1.0


@dataclass(frozen=True)
class KnownUser:
    id: int
    username: str
    kind: str
    is_admin: bool
    token_version: int


class UserDirectory:
    def __init__(self, sessions: SessionFactory, database_url: str, *, ttl: float) -> None:
        self._sessions = sessions
        self._database_url = database_url
        self._ttl = ttl
        self._entries: dict[int, tuple[float, KnownUser]] = {}
        self._loading: dict[int, asyncio.Future[KnownUser | None]] = {}
        # Bumped by every eviction: a row read before a notice must not be cached after it.
        self._generation = 0
        self._listener: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def get(self, user_id: int) -> KnownUser | None:
        cached = self._entries.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        loading = self._loading.get(user_id)
        if loading is not None:  # one query for a burst of requests by the same user
            return await asyncio.shield(loading)
        future: asyncio.Future[KnownUser | None] = asyncio.get_running_loop().create_future()
        self._loading[user_id] = future
        generation = self._generation
        try:
            user = await self._load(user_id)
            future.set_result(user)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else must
            raise
        finally:
            self._loading.pop(user_id, None)
        if user is not None and self.listening and generation == self._generation:
            self._entries[user_id] = (time.monotonic() + self._ttl, user)
        return user

    def evict(self, user_id: int | None = None) -> None:
        self._generation += 1
        if user_id is None:
            self._entries.clear()
        else:
            self._entries.pop(user_id, None)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="user-directory")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_listener()

    async def _load(self, user_id: int) -> KnownUser | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(
                        User.id, User.username, User.kind, User.is_admin, User.token_version
                    ).where(User.id == user_id)
                )
            ).first()
        return KnownUser(*row) if row is not None else None

    async def _listen_forever(self) -> None:
        while True:
            try:
                lost = asyncio.Event()
                await self._connect(lost)
                await lost.wait()
            except Exception as exc:  # never give up listening: eviction depends on it
                log.warning("user directory: listening failed (%r); retrying", exc)
            self.evict()
            await self._close_listener()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _connect(self, lost: asyncio.Event) -> None:
        self._listener = await asyncpg.connect(
            **asyncpg_params(self._database_url),
            timeout=5,
            server_settings={"application_name": "albs-gateway-listen"},
        )
        self._listener.add_termination_listener(lambda _conn: lost.set())
        await self._listener.add_listener(USERS_CHANNEL, self._on_notice)
        # Entries cached before this connection listened may have missed a notice.
        self.evict()

    def _on_notice(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.evict(int(payload) if payload.isdigit() else None)

    async def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
            self._listener = None
