"""feed filters: indexes for every filter of the build feed, refs' type and module flag

`builds.signed`, `build_task_refs.ref_type`/`is_module` and the packages' NEVRA on
`build_artifacts` are new; `project` and `ref` are substring searches served by trigram
indexes (docs/decisions/0016-feed-filters.md).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 19:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RPM_COLUMNS = (
    ("rpm_name", sa.Text()),
    ("rpm_epoch", sa.Integer()),
    ("rpm_version", sa.Text()),
    ("rpm_release", sa.Text()),
    ("rpm_arch", sa.Text()),
)


def upgrade() -> None:
    # Trusted since PostgreSQL 13: the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.add_column(
        "builds", sa.Column("signed", sa.Boolean(), server_default="false", nullable=False)
    )
    op.drop_index("ix_builds_user_id", table_name="builds")
    op.create_index("ix_builds_user_id_id", "builds", ["user_id", "id"])
    op.create_index("ix_builds_released_id", "builds", ["id"], postgresql_where=sa.text("released"))
    op.create_index("ix_builds_signed_id", "builds", ["id"], postgresql_where=sa.text("signed"))
    op.add_column("build_task_refs", sa.Column("ref_type", sa.SmallInteger(), nullable=True))
    op.add_column(
        "build_task_refs",
        sa.Column("is_module", sa.Boolean(), server_default="false", nullable=False),
    )
    for column in ("url", "git_ref"):
        op.create_index(
            f"ix_build_task_refs_{column}_trgm",
            "build_task_refs",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )
    op.create_index(
        "ix_build_tasks_platform_id_build_id", "build_tasks", ["platform_id", "build_id"]
    )
    op.create_index("ix_build_tasks_arch_build_id", "build_tasks", ["arch", "build_id"])
    op.create_index("ix_build_tasks_ref_id", "build_tasks", ["ref_id"])
    for name, type_ in RPM_COLUMNS:
        op.add_column("build_artifacts", sa.Column(name, type_, nullable=True))
    for name in ("rpm_name", "rpm_version", "rpm_release"):
        op.create_index(f"ix_build_artifacts_{name}", "build_artifacts", [name])


def downgrade() -> None:
    for name in ("rpm_name", "rpm_version", "rpm_release"):
        op.drop_index(f"ix_build_artifacts_{name}", table_name="build_artifacts")
    for name, _ in RPM_COLUMNS:
        op.drop_column("build_artifacts", name)
    op.drop_index("ix_build_tasks_ref_id", table_name="build_tasks")
    op.drop_index("ix_build_tasks_arch_build_id", table_name="build_tasks")
    op.drop_index("ix_build_tasks_platform_id_build_id", table_name="build_tasks")
    for column in ("url", "git_ref"):
        op.drop_index(f"ix_build_task_refs_{column}_trgm", table_name="build_task_refs")
    op.drop_column("build_task_refs", "is_module")
    op.drop_column("build_task_refs", "ref_type")
    op.drop_index("ix_builds_signed_id", table_name="builds")
    op.drop_index("ix_builds_released_id", table_name="builds")
    op.drop_index("ix_builds_user_id_id", table_name="builds")
    op.create_index("ix_builds_user_id", "builds", ["user_id"])
    op.drop_column("builds", "signed")
