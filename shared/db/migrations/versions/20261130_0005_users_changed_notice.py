"""users changed notice: a trigger announces every change of a user row (NOTIFY albs_users)

The gateway caches the users behind tokens and evicts an entry when this notice arrives,
so a revocation or a change of rights takes effect at once on every gateway process.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 16:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION albs_users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                PERFORM pg_notify('albs_users', '');
            ELSIF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('albs_users', OLD.id::text);
            ELSE
                PERFORM pg_notify('albs_users', NEW.id::text);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER users_changed AFTER UPDATE OR DELETE ON users "
        "FOR EACH ROW EXECUTE FUNCTION albs_users_changed()"
    )
    # Ids restart after a TRUNCATE; every cached user is then unknown (an empty payload).
    op.execute(
        "CREATE TRIGGER users_truncated AFTER TRUNCATE ON users "
        "FOR EACH STATEMENT EXECUTE FUNCTION albs_users_changed()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER users_truncated ON users")
    op.execute("DROP TRIGGER users_changed ON users")
    op.execute("DROP FUNCTION albs_users_changed()")
