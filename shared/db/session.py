"""Engine and session factory; built by each process at start, never at import."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionFactory = async_sessionmaker[AsyncSession]
P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class DbLimits:
    """How long anything may wait on PostgreSQL; a wait beyond these is an error, not a hang.

    The pool waits `pool_timeout` for a free connection, a new connection `connect_timeout`;
    on the server a statement runs `statement_timeout` at most, waits `lock_timeout` for a
    lock, and a transaction left idle is ended after `idle_in_transaction_timeout`.
    """

    pool_timeout: float = 5.0
    connect_timeout: float = 5.0
    statement_timeout: float = 30.0
    lock_timeout: float = 10.0
    idle_in_transaction_timeout: float = 60.0


def create_engine(
    database_url: str,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    limits: DbLimits | None = None,
    application_name: str = "albs",
) -> AsyncEngine:
    """An engine that opens at most `pool_size + max_overflow` connections (default 2 x size)."""
    limits = limits or DbLimits()
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_timeout=limits.pool_timeout,
        pool_pre_ping=True,
        connect_args={
            "timeout": limits.connect_timeout,
            "server_settings": {
                # Names the process in pg_stat_activity, so an operator sees who holds what.
                "application_name": application_name,
                "statement_timeout": _ms(limits.statement_timeout),
                "lock_timeout": _ms(limits.lock_timeout),
                "idle_in_transaction_session_timeout": _ms(limits.idle_in_transaction_timeout),
            },
        },
    )


def asyncpg_params(database_url: str) -> dict[str, Any]:
    """Where asyncpg connects for a SQLAlchemy URL: for LISTEN connections and raw pools."""
    url = make_url(database_url)
    return {
        "host": url.host,
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
        "database": url.database,
    }


class StatementPool:
    """A small asyncpg pool for a service's hottest statements, next to its SQLAlchemy
    engine: autocommit, statements prepared once per connection, and no reset round trip
    on release (these statements leave no session state). Opened by its first use: a
    subscriber may consume before the start hooks ran, and a service starts while
    PostgreSQL is still down."""

    def __init__(
        self, database_url: str, size: int, *, application_name: str, limits: DbLimits
    ) -> None:
        self._database_url = database_url
        self._size = size
        self._application_name = application_name
        self.limits = limits
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def get(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    **asyncpg_params(self._database_url),
                    min_size=1,
                    max_size=self._size,
                    reset=_keep_as_is,
                    timeout=self.limits.connect_timeout,
                    server_settings={
                        "application_name": self._application_name,
                        "statement_timeout": _ms(self.limits.statement_timeout),
                        "lock_timeout": _ms(self.limits.lock_timeout),
                    },
                )
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _keep_as_is(connection: asyncpg.Connection) -> None:
    """Nothing to reset: skip asyncpg's reset statement on release."""


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One transaction: commit when the block ends normally, roll back when it raises."""
    async with factory() as session, session.begin():
        yield session


async def in_transaction(
    factory: SessionFactory,
    operation: Callable[Concatenate[AsyncSession, P], Awaitable[T]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run `operation(session, ...)` as one unit of work and return its result after commit."""
    async with unit_of_work(factory) as session:
        return await operation(session, *args, **kwargs)
