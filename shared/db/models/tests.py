"""Test tasks sent to ALTS for the packages of a build task."""

from datetime import datetime
from enum import IntEnum
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, SmallInteger, Text, text
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
    __table_args__ = (
        # The dispatcher claims created tasks oldest first; the timeout reads dispatched ones.
        Index("ix_test_tasks_created", "id", postgresql_where=text("status = 1")),
        Index("ix_test_tasks_started", "dispatched_at", postgresql_where=text("status = 2")),
    )

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
    # What is POSTed to ALTS's /tasks/schedule, built when the task is created.
    schedule_body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Dispatch: attempts so far, a claim while one replica talks to ALTS, the next try.
    dispatch_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # ALTS's answer to the schedule request (its task id).
    alts_reply: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why it is not progressing or failed without a result: ALTS unreachable, a timeout, ...
    error: Mapped[str | None] = mapped_column(Text)


class TestTaskArtifact(Base):
    __test__ = False
    __tablename__ = "test_task_artifacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    test_task_id: Mapped[int] = mapped_column(
        ForeignKey("test_tasks.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(Text)
    href: Mapped[str] = mapped_column(Text)
