"""sign task canceled_by: who canceled a sign task (its late report is then refused)

Revision ID: 0011
Revises: 0009
Create Date: 2026-11-30 22:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable without a default: a metadata-only change.
    op.add_column("sign_tasks", sa.Column("canceled_by", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("sign_tasks", "canceled_by")
