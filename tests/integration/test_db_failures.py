"""Which database errors answer 503 (try again) and which are bugs (500), on the real server."""

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.failures import database_unavailable

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
