"""Idempotency keys of build creation: a retried POST /builds/ finds the first build."""

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, created_at_column


class BuildIdempotencyKey(Base):
    __tablename__ = "build_idempotency_keys"

    # Keys are per user: two clients choosing the same key never see each other's build.
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    body_hash: Mapped[str] = mapped_column(Text)
    # NULL only inside the transaction that creates the build.
    build_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("builds.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = created_at_column()
