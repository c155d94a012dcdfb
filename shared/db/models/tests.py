"""Test tasks sent to ALTS for the packages of a build task."""

from datetime import datetime
from enum import IntEnum
from typing import Any

from sqlalchemy import ForeignKey, Integer, SmallInteger, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, created_at_column


class TestTaskStatus(IntEnum):
    __test__ = False  # not a pytest class

    CREATED = 1
    STARTED = 2
    COMPLETED = 3
    FAILED = 4


class TestTask(Base):
    __test__ = False
    __tablename__ = "test_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    build_task_id: Mapped[int] = mapped_column(
        ForeignKey("build_tasks.id", ondelete="CASCADE"), index=True
    )
    package_name: Mapped[str] = mapped_column(Text)
    package_version: Mapped[str] = mapped_column(Text)
    package_release: Mapped[str | None] = mapped_column(Text)
    env_arch: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(SmallInteger, default=TestTaskStatus.CREATED)
    alts_response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    revision: Mapped[int] = mapped_column(Integer)
    repository_id: Mapped[int | None] = mapped_column(
        ForeignKey("repositories.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = created_at_column()


class TestTaskArtifact(Base):
    __test__ = False
    __tablename__ = "test_task_artifacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    test_task_id: Mapped[int] = mapped_column(
        ForeignKey("test_tasks.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(Text)
    href: Mapped[str] = mapped_column(Text)
