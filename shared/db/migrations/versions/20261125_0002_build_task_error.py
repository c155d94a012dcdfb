"""build task error: why a task failed when the node's report does not say it

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


def downgrade() -> None:
    op.drop_column("build_tasks", "error")
