from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Column, ForeignKey, Table, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db.base import Base, created_at_column

platform_repository = Table(
    "platform_repository",
    Base.metadata,
    Column("platform_id", ForeignKey("platforms.id", ondelete="CASCADE"), primary_key=True),
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
)


class Repository(Base):
    """A yum repository: a platform's external mirror, or a Pulp repo of a build or distro."""

    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("name", "arch", "type", "debug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    arch: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    debug: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    production: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    pulp_href: Mapped[str | None] = mapped_column(Text)


class Platform(Base):
    __tablename__ = "platforms"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    type: Mapped[str] = mapped_column(Text)
    distr_type: Mapped[str] = mapped_column(Text)
    distr_version: Mapped[str] = mapped_column(Text)
    test_dist_name: Mapped[str] = mapped_column(Text)
    arch_list: Mapped[list[str]] = mapped_column(JSONB)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at_column()

    repos: Mapped[list[Repository]] = relationship(
        secondary=platform_repository, order_by=Repository.id, lazy="raise"
    )
