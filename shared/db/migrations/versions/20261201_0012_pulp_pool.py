"""pulp pool: empty Pulp repositories made ahead of the builds that take them

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 01:20:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pulp_pool",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("repo_href", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("claimed_for", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pulp_pool")),
        sa.UniqueConstraint("name", name=op.f("uq_pulp_pool_name")),
    )
    op.create_index(
        "ix_pulp_pool_ready",
        "pulp_pool",
        ["kind", "published", "id"],
        postgresql_where=sa.text("repo_href IS NOT NULL AND claimed_for IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_pulp_pool_ready", table_name="pulp_pool")
    op.drop_table("pulp_pool")
