"""signing: sign keys, sign tasks with attempt and lease (builds.signed came with 0008)

Revision ID: 0009
Revises: 0010
Create Date: 2026-11-30 19:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("keyid", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=40), nullable=False),
        sa.Column("public_url", sa.Text(), nullable=False),
        sa.Column(
            "inserted", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_keys")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_sign_keys_fingerprint")),
        sa.UniqueConstraint("keyid", name=op.f("uq_sign_keys_keyid")),
    )
    op.create_table(
        "sign_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("build_id", sa.Integer(), nullable=False),
        sa.Column("sign_key_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("log_href", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("node_id", sa.Text(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("packages", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("signed_hrefs", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["build_id"],
            ["builds.id"],
            name=op.f("fk_sign_tasks_build_id_builds"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sign_key_id"],
            ["sign_keys.id"],
            name=op.f("fk_sign_tasks_sign_key_id_sign_keys"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_tasks")),
    )
    op.create_index(op.f("ix_sign_tasks_build_id"), "sign_tasks", ["build_id"], unique=False)
    op.create_index(op.f("ix_sign_tasks_sign_key_id"), "sign_tasks", ["sign_key_id"], unique=False)
    op.create_index(
        "uq_sign_tasks_build_in_flight",
        "sign_tasks",
        ["build_id"],
        unique=True,
        postgresql_where=sa.text("status IN (1, 2)"),
    )
    op.create_index(
        "ix_sign_tasks_idle", "sign_tasks", ["id"], postgresql_where=sa.text("status = 1")
    )
    op.create_index(
        "ix_sign_tasks_lease",
        "sign_tasks",
        ["lease_expires_at"],
        postgresql_where=sa.text("status = 2 AND lease_expires_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("sign_tasks")
    op.drop_table("sign_keys")
