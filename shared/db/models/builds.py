from datetime import datetime
from enum import IntEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db.base import Base, created_at_column
from shared.db.models.platforms import Platform, Repository
from shared.db.models.users import User


class BuildTaskStatus(IntEnum):
    IDLE = 0
    STARTED = 1
    COMPLETED = 2
    FAILED = 3
    EXCLUDED = 4
    CANCELLED = 5


FINISHED_STATUSES = (
    BuildTaskStatus.COMPLETED,
    BuildTaskStatus.FAILED,
    BuildTaskStatus.EXCLUDED,
    BuildTaskStatus.CANCELLED,
)

# Not yet counted for the build's end: waiting, being built, or finished with its artifacts
# not yet filed. Cancelled tasks are settled at once.
UNSETTLED = "status IN (0, 1) OR (status IN (2, 3, 4) AND artifacts_stored_at IS NULL)"

# A task that may be handed out now to a node building the arches bound as $1 (asyncpg's
# style): the scheduler's claim and the gateway's idle check read exactly these rows.
RUNNABLE_FOR_ARCHES = "status = 0 AND runnable AND array_position($1::text[], arch) IS NOT NULL"

build_repo = Table(
    "build_repo",
    Base.metadata,
    Column("build_id", ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True),
    Column("repository_id", ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
)

# Row (build_id, linked_build_id): build_id builds against linked_build_id's repositories.
build_dependency = Table(
    "build_dependency",
    Base.metadata,
    Column("build_id", ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True),
    Column("linked_build_id", ForeignKey("builds.id", ondelete="RESTRICT"), primary_key=True),
)

# Row (task_id, depends_on_id): task_id may not start before depends_on_id is released.
build_task_dependency = Table(
    "build_task_dependency",
    Base.metadata,
    Column("task_id", ForeignKey("build_tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("depends_on_id", ForeignKey("build_tasks.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_build_task_dependency_depends_on_id", "depends_on_id"),
)


class Build(Base):
    __tablename__ = "builds"
    __table_args__ = (
        # The feed, newest first, filtered by `created_by`, `released` or `signed` (0016).
        Index("ix_builds_user_id_id", "user_id", "id"),
        Index("ix_builds_released_id", "id", postgresql_where=text("released")),
        Index("ix_builds_signed_id", "id", postgresql_where=text("signed")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = created_at_column()
    mock_options: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Set once the build's Pulp repositories exist; before that no task is assignable.
    ready: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # Why the build could not go on (e.g. its repositories could not be created).
    failure_reason: Mapped[str | None] = mapped_column(Text)
    released: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # Every current RPM of the build carries a signature (a sign task completed since the
    # last restart).
    signed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(lazy="raise")
    tasks: Mapped[list["BuildTask"]] = relationship(
        back_populates="build", order_by="BuildTask.id", lazy="raise", passive_deletes=True
    )
    repos: Mapped[list[Repository]] = relationship(
        secondary=build_repo, order_by=Repository.id, lazy="raise"
    )
    linked_builds: Mapped[list["Build"]] = relationship(
        secondary=build_dependency,
        primaryjoin=lambda: Build.id == build_dependency.c.build_id,
        secondaryjoin=lambda: Build.id == build_dependency.c.linked_build_id,
        order_by=lambda: Build.id,
        lazy="raise",
    )


class RefType(IntEnum):
    """What a ref names, as the Dec-2021 frontend sends it."""

    GIT_BRANCH = 1
    GIT_TAG = 2
    SRPM_URL = 3
    GIT_REF = 4


class BuildTaskRef(Base):
    """A git ref (or src-RPM url) requested in a build; shared by its tasks on every arch."""

    __tablename__ = "build_task_refs"
    __table_args__ = (
        # The feed's `project` and `ref` filters are substring searches (docs/decisions/0016).
        Index(
            "ix_build_task_refs_url_trgm",
            "url",
            postgresql_using="gin",
            postgresql_ops={"url": "gin_trgm_ops"},
        ),
        Index(
            "ix_build_task_refs_git_ref_trgm",
            "git_ref",
            postgresql_using="gin",
            postgresql_ops={"git_ref": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    git_ref: Mapped[str | None] = mapped_column(Text)
    ref_type: Mapped[int | None] = mapped_column(SmallInteger)
    is_module: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")


class BuildTask(Base):
    __tablename__ = "build_tasks"
    __table_args__ = (
        # A claim reads only runnable idle tasks, oldest first; the reaper reads leases.
        Index("ix_build_tasks_runnable", "id", postgresql_where=text("status = 0 AND runnable")),
        Index("ix_build_tasks_lease", "lease_expires_at", postgresql_where=text("status = 1")),
        # Finishing a build asks whether any task is still unsettled (release.py).
        Index("ix_build_tasks_unsettled", "build_id", postgresql_where=text(UNSETTLED)),
        # The feed's `platform_id` and `build_task_arch` filters.
        Index("ix_build_tasks_platform_id_build_id", "platform_id", "build_id"),
        Index("ix_build_tasks_arch_build_id", "arch", "build_id"),
        # From a ref found by `project`/`ref` to its tasks (and the ref's cascade).
        Index("ix_build_tasks_ref_id", "ref_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"), index=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platforms.id", ondelete="RESTRICT"))
    ref_id: Mapped[int] = mapped_column(ForeignKey("build_task_refs.id", ondelete="CASCADE"))
    status: Mapped[int] = mapped_column(SmallInteger, default=BuildTaskStatus.IDLE)
    # True once the build's repositories exist and every awaited task was released. Kept by
    # the scheduler so that a claim never has to walk past blocked tasks (docs/decisions/0002).
    runnable: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    index: Mapped[int] = mapped_column(Integer)
    arch: Mapped[str] = mapped_column(Text)
    # Last assignment or heartbeat, as the reference's `ts`.
    ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    node_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when the artifacts service has filed this attempt's artifacts into Pulp.
    artifacts_stored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why the task failed when the node's report does not say it (e.g. artifacts not stored).
    error: Mapped[str | None] = mapped_column(Text)
    # The albs-node Task, ready to send; `json`, not `jsonb`, keeps its text and key order
    # (docs/decisions/0008-claim-in-one-statement.md). Deferred: reading a build's tasks
    # must not drag a few kilobytes per task along.
    task_body: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, deferred=True, deferred_raiseload=True
    )

    build: Mapped[Build] = relationship(back_populates="tasks", lazy="raise")
    platform: Mapped[Platform] = relationship(lazy="raise")
    ref: Mapped[BuildTaskRef] = relationship(lazy="raise")
    artifacts: Mapped[list["BuildArtifact"]] = relationship(
        order_by="BuildArtifact.id", lazy="raise", passive_deletes=True
    )
    # The tasks this one still waits for; a row disappears when the awaited task is released.
    dependencies: Mapped[list["BuildTask"]] = relationship(
        secondary=build_task_dependency,
        primaryjoin=lambda: BuildTask.id == build_task_dependency.c.task_id,
        secondaryjoin=lambda: BuildTask.id == build_task_dependency.c.depends_on_id,
        lazy="raise",
        passive_deletes=True,
    )


class BuildArtifact(Base):
    """A file a node reported for one attempt of a task.

    `artifact_href` is the Pulp artifact the node uploaded; `href` is the Pulp content
    made from it inside the build's repository, set once the artifacts service filed it.
    The `rpm_*` columns are the package's NEVRA as Pulp read it from the RPM header.
    """

    __tablename__ = "build_artifacts"
    __table_args__ = (
        # The feed's rpm_* filters; name, version and release select few rows (0016).
        Index("ix_build_artifacts_rpm_name", "rpm_name"),
        Index("ix_build_artifacts_rpm_version", "rpm_version"),
        Index("ix_build_artifacts_rpm_release", "rpm_release"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    build_task_id: Mapped[int] = mapped_column(
        ForeignKey("build_tasks.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    artifact_href: Mapped[str] = mapped_column(Text)
    href: Mapped[str | None] = mapped_column(Text)
    rpm_name: Mapped[str | None] = mapped_column(Text)
    rpm_epoch: Mapped[int | None] = mapped_column(Integer)
    rpm_version: Mapped[str | None] = mapped_column(Text)
    rpm_release: Mapped[str | None] = mapped_column(Text)
    rpm_arch: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
