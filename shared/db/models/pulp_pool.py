"""Warm pool of the artifacts service: empty Pulp repositories made ahead of the builds."""

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, created_at_column


class PulpPoolEntry(Base):
    """One repository with its distribution (and, if `published`, an empty publication).

    `repo_href` is NULL while Pulp makes it; `claimed_for` names the repository it becomes
    once a build or a task takes it, until the rename in Pulp is done and the row deleted.
    """

    __tablename__ = "pulp_pool"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(Text)  # "rpm" or "file"
    published: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(Text, unique=True)  # the repository's name in Pulp
    repo_href: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    claimed_for: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_pulp_pool_ready",
            "kind",
            "published",
            "id",
            postgresql_where=text("repo_href IS NOT NULL AND claimed_for IS NULL"),
        ),
    )
