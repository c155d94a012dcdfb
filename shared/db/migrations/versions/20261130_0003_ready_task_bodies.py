"""ready task bodies: the albs-node Task stored per task, unsettled-task index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 15:45:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSETTLED = "status IN (0, 1) OR (status IN (2, 3, 4) AND artifacts_stored_at IS NULL)"


def upgrade() -> None:
    # Tasks made runnable before this revision have no body; the claim builds it for them.
    op.add_column("build_tasks", sa.Column("task_body", sa.JSON(), nullable=True))
    op.create_index(
        "ix_build_tasks_unsettled",
        "build_tasks",
        ["build_id"],
        postgresql_where=sa.text(UNSETTLED),
    )


def downgrade() -> None:
    op.drop_index("ix_build_tasks_unsettled", table_name="build_tasks")
    op.drop_column("build_tasks", "task_body")
