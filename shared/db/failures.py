"""Which database errors mean "unavailable or overloaded, try again" (503) rather than a bug (500).

SQLAlchemy's asyncpg dialect maps only some PostgreSQL errors to OperationalError: "too many
clients", a statement or lock timeout and a server shutting down arrive as a plain DBAPIError.
Their SQLSTATE tells them apart.
"""

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# 08 connection exception; 53 insufficient resources (too many connections, out of memory,
# disk full); 57 operator intervention (statement timeout, shutdown, cannot connect now).
RETRYABLE_CLASSES = frozenset({"08", "53", "57"})
# Lock timeout, serialization failure, deadlock: the same request may well succeed again.
RETRYABLE_CODES = frozenset({"55P03", "40001", "40P01"})


def database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, asyncpg.PostgresError):  # asyncpg used directly (the claim pool)
        return _retryable(str(exc.sqlstate or ""))
    if not isinstance(exc, DBAPIError):
        return False
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return True
    return _retryable(str(getattr(exc.orig, "sqlstate", None) or ""))


def _retryable(state: str) -> bool:
    return state[:2] in RETRYABLE_CLASSES or state in RETRYABLE_CODES
