"""A finished build's status from per-status counts agrees with the API's derive_status."""

import itertools
from collections import Counter

from scheduler.release import settled_status
from shared.db.base import utcnow
from shared.db.models import Build, BuildTask, BuildTaskStatus
from shared.db.queries.builds import derive_status

SETTLED = [
    BuildTaskStatus.COMPLETED,
    BuildTaskStatus.FAILED,
    BuildTaskStatus.EXCLUDED,
    BuildTaskStatus.CANCELLED,
]


def settled_build(statuses: tuple[BuildTaskStatus, ...], failure_reason: str | None) -> Build:
    tasks = [
        BuildTask(
            status=s,
            artifacts_stored_at=None if s == BuildTaskStatus.CANCELLED else utcnow(),
        )
        for s in statuses
    ]
    return Build(failure_reason=failure_reason, tasks=tasks)


def test_every_mix_of_settled_tasks_gets_the_status_the_api_shows() -> None:
    for size in (1, 2, 3):
        for statuses in itertools.combinations_with_replacement(SETTLED, size):
            for reason in (None, "repositories could not be created"):
                build = settled_build(statuses, reason)
                counts = dict(Counter(statuses))
                assert settled_status(reason, counts) == derive_status(build), (statuses, reason)
