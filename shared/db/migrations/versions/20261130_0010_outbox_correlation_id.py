"""outbox correlation id: the request an event was caused by travels with it

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-30 19:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable without a default: a metadata-only change, instant on a large outbox.
    op.add_column("outbox", sa.Column("correlation_id", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "correlation_id")
