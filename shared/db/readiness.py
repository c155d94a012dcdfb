"""Wait for PostgreSQL at start: a busy or absent database is waited for, not died of."""

import asyncio
import logging
import random
import time

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


async def wait_for_database(
    engine: AsyncEngine, *, deadline_seconds: float = 120.0, first_delay: float = 0.5
) -> None:
    """Return once `SELECT 1` succeeds; retry with jittered backoff until the deadline."""
    give_up = time.monotonic() + deadline_seconds
    delay = first_delay
    while True:
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return
        except (DBAPIError, OSError, TimeoutError) as exc:
            if time.monotonic() + delay > give_up:
                raise
            log.warning("PostgreSQL not ready (%s); retrying in %.1f s", _short(exc), delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0) * random.uniform(0.8, 1.2)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
