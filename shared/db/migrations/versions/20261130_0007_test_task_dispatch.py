"""test task dispatch: the schedule body, claim, attempts, timeout and error of a test task

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-30 19:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPS = ("claimed_until", "next_attempt_at", "dispatched_at", "finished_at")


def upgrade() -> None:
    op.add_column("test_tasks", sa.Column("schedule_body", postgresql.JSONB(), nullable=True))
    op.add_column(
        "test_tasks",
        sa.Column("dispatch_attempts", sa.Integer(), server_default="0", nullable=False),
    )
    for name in TIMESTAMPS:
        op.add_column("test_tasks", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.add_column("test_tasks", sa.Column("alts_reply", postgresql.JSONB(), nullable=True))
    op.add_column("test_tasks", sa.Column("error", sa.Text(), nullable=True))
    op.create_index(
        "ix_test_tasks_created", "test_tasks", ["id"], postgresql_where=sa.text("status = 1")
    )
    op.create_index(
        "ix_test_tasks_started",
        "test_tasks",
        ["dispatched_at"],
        postgresql_where=sa.text("status = 2"),
    )


def downgrade() -> None:
    op.drop_index("ix_test_tasks_started", table_name="test_tasks")
    op.drop_index("ix_test_tasks_created", table_name="test_tasks")
    for name in ("error", "alts_reply", *TIMESTAMPS, "dispatch_attempts", "schedule_body"):
        op.drop_column("test_tasks", name)
