"""scheduling columns: build task error and the runnable flag the claim reads

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("build_tasks", sa.Column("error", sa.Text(), nullable=True))
    op.add_column(
        "build_tasks",
        sa.Column("runnable", sa.Boolean(), server_default="false", nullable=False),
    )
    op.drop_index("ix_build_tasks_idle", table_name="build_tasks")
    op.create_index(
        "ix_build_tasks_runnable",
        "build_tasks",
        ["id"],
        postgresql_where=sa.text("status = 0 AND runnable"),
    )


def downgrade() -> None:
    op.drop_index("ix_build_tasks_runnable", table_name="build_tasks")
    op.create_index(
        "ix_build_tasks_idle", "build_tasks", ["id"], postgresql_where=sa.text("status = 0")
    )
    op.drop_column("build_tasks", "runnable")
    op.drop_column("build_tasks", "error")
