"""Which database errors answer 503 (try again) and which are bugs (500), on the real server."""

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.failures import database_unavailable
from shared.db.session import asyncpg_params

pytestmark = [pytest.mark.integration]


async def test_a_statement_timeout_is_unavailable_and_a_bad_statement_is_not(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SET statement_timeout = 50"))
        with pytest.raises(DBAPIError) as timeout:
            await connection.execute(text("SELECT pg_sleep(2)"))
    async with engine.connect() as connection:
        with pytest.raises(DBAPIError) as bug:
            await connection.execute(text("SELECT 1 / 0"))

    # SQLAlchemy does not call it an OperationalError, which is why the SQLSTATE is read.
    assert not isinstance(timeout.value, OperationalError)
    assert database_unavailable(timeout.value)
    assert not database_unavailable(bug.value)


def test_too_many_clients_is_unavailable() -> None:
    """What asyncpg raises when PostgreSQL's max_connections is used up, as SQLAlchemy wraps it."""
    refused = asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")
    adapted = AsyncAdapt_asyncpg_dbapi.Error(str(refused), refused)  # type: ignore[no-untyped-call]
    wrapped = DBAPIError("connect", None, adapted)
    assert database_unavailable(wrapped)


async def test_asyncpg_errors_are_judged_by_the_same_codes(database_url: str) -> None:
    """The claim pool uses asyncpg directly: its time-outs are 503 too, its bugs are not."""
    connection = await asyncpg.connect(**asyncpg_params(database_url))
    try:
        await connection.execute("SET statement_timeout = 50")
        with pytest.raises(asyncpg.PostgresError) as timeout:
            await connection.execute("SELECT pg_sleep(2)")
        with pytest.raises(asyncpg.PostgresError) as bug:
            await connection.execute("SELECT 1 / 0")
    finally:
        await connection.close()
    assert database_unavailable(timeout.value)
    assert not database_unavailable(bug.value)
