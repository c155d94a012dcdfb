"""Every table of the domain; importing this package registers them all on Base.metadata."""

from shared.db.base import Base
from shared.db.models.builds import (
    Build,
    BuildArtifact,
    BuildTask,
    BuildTaskRef,
    BuildTaskStatus,
    RefType,
    build_dependency,
    build_repo,
    build_task_dependency,
)
from shared.db.models.distributions import (
    Distribution,
    distribution_packages,
    distribution_platforms,
    distribution_repositories,
)
from shared.db.models.idempotency import BuildIdempotencyKey
from shared.db.models.messaging import InboxMessage, OutboxMessage
from shared.db.models.packages import BinaryRpm, SourceRpm
from shared.db.models.platforms import Platform, Repository, platform_repository
from shared.db.models.pulp_pool import PulpPoolEntry
from shared.db.models.signing import SignKey, SignTask, SignTaskStatus
from shared.db.models.tests import TestTask, TestTaskArtifact, TestTaskStatus
from shared.db.models.users import User, UserKind

__all__ = [
    "Base",
    "BinaryRpm",
    "Build",
    "BuildArtifact",
    "BuildIdempotencyKey",
    "BuildTask",
    "BuildTaskRef",
    "BuildTaskStatus",
    "Distribution",
    "InboxMessage",
    "OutboxMessage",
    "Platform",
    "PulpPoolEntry",
    "RefType",
    "Repository",
    "SignKey",
    "SignTask",
    "SignTaskStatus",
    "SourceRpm",
    "TestTask",
    "TestTaskArtifact",
    "TestTaskStatus",
    "User",
    "UserKind",
    "build_dependency",
    "build_repo",
    "build_task_dependency",
    "distribution_packages",
    "distribution_platforms",
    "distribution_repositories",
    "platform_repository",
]
