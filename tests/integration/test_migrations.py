"""The Alembic history and the models describe the same schema."""

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import migrate
from shared.db.models import Base


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_server_default": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []


async def test_upgrade_builds_every_table_of_the_models(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_history_downgrades_to_nothing_and_back(database_url: str) -> None:
    scratch = database_url.rsplit("/", 1)[0] + "/" + database_url.rsplit("/", 1)[1] + "_scratch"
    asyncio.run(migrate.create_database(scratch))
    try:
        migrate.upgrade(scratch)
        migrate.downgrade(scratch, "base")
        migrate.upgrade(scratch)
    finally:
        asyncio.run(migrate.drop_database(scratch))
