"""Sign keys and sign tasks (SIGNING.md §2, with the lease columns of §5.2)."""

from datetime import datetime
from enum import IntEnum
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, SmallInteger, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db.base import Base, created_at_column


class SignTaskStatus(IntEnum):
    """The original's codes, which the frontend shows."""

    IDLE = 1
    IN_PROGRESS = 2
    COMPLETED = 3
    FAILED = 4


# A build has at most one task in these states (the partial unique index below).
IN_FLIGHT = (SignTaskStatus.IDLE, SignTaskStatus.IN_PROGRESS)


class SignKey(Base):
    __tablename__ = "sign_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    # Upper-case hex, exactly as gnupg prints it and the Sign Node offers it.
    keyid: Mapped[str] = mapped_column(String(16), unique=True)
    fingerprint: Mapped[str] = mapped_column(String(40), unique=True)
    public_url: Mapped[str] = mapped_column(Text)
    inserted: Mapped[datetime] = created_at_column()


class SignTask(Base):
    __tablename__ = "sign_tasks"
    __table_args__ = (
        Index(
            "uq_sign_tasks_build_in_flight",
            "build_id",
            unique=True,
            postgresql_where=text("status IN (1, 2)"),
        ),
        Index("ix_sign_tasks_idle", "id", postgresql_where=text("status = 1")),
        Index(
            "ix_sign_tasks_lease",
            "lease_expires_at",
            postgresql_where=text("status = 2 AND lease_expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"), index=True)
    sign_key_id: Mapped[int] = mapped_column(
        ForeignKey("sign_keys.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[int] = mapped_column(
        SmallInteger, default=SignTaskStatus.IDLE, server_default="1"
    )
    error_message: Mapped[str | None] = mapped_column(Text)
    log_href: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Who holds it (from the token) and until when; NULL lease once the node reported.
    node_id: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The package list given to the node, frozen at the claim (SignPackage dumps).
    packages: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    # The accepted success report ({package id: artifact href}), while Pulp takes it in.
    signed_hrefs: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who canceled it (a failed task): its holder's late success report is then refused.
    canceled_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()

    sign_key: Mapped[SignKey] = relationship(lazy="raise")
