from datetime import datetime

from sqlalchemy import Column, ForeignKey, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db.base import Base, created_at_column
from shared.db.models.platforms import Platform, Repository

distribution_platforms = Table(
    "distribution_platforms",
    Base.metadata,
    Column("distribution_id", ForeignKey("distributions.id", ondelete="CASCADE"), primary_key=True),
    Column("platform_id", ForeignKey("platforms.id", ondelete="CASCADE"), primary_key=True),
)

distribution_repositories = Table(
    "distribution_repositories",
    Base.metadata,
    Column("distribution_id", ForeignKey("distributions.id", ondelete="CASCADE"), primary_key=True),
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
)

# Builds whose packages were added to a distribution.
distribution_packages = Table(
    "distribution_packages",
    Base.metadata,
    Column("distribution_id", ForeignKey("distributions.id", ondelete="CASCADE"), primary_key=True),
    Column("build_id", ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True),
)


class Distribution(Base):
    __tablename__ = "distributions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = created_at_column()

    platforms: Mapped[list[Platform]] = relationship(
        secondary=distribution_platforms, order_by=Platform.id, lazy="raise"
    )
    repositories: Mapped[list[Repository]] = relationship(
        secondary=distribution_repositories, order_by=Repository.id, lazy="raise"
    )
