"""Decisions about test tasks, as pure functions over plain data (REFERENCE §5.6, §11.12-16).

Which packages of a build task get a test, what ALTS is asked, what a result means, and how
long to wait before asking an unreachable ALTS again.
"""

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from shared.contracts.test_tasks import TestLog
from shared.db.models import TestTaskStatus
from shared.rpm_names import Nevra, parse_rpm_file_name

LOG_KEY = "logs"
TESTS_KEY = "tests"


def packages_to_test(rpm_names: Iterable[str]) -> list[Nevra]:
    """One test per binary package: no source RPM, no debuginfo/debugsource (fixing §11.12);
    a name reported twice is tested once, in the order reported. ALTS is never told an epoch."""
    found: dict[Nevra, None] = {}
    for name in rpm_names:
        package = parse_rpm_file_name(name)
        if package is not None and not package.is_source and not package.is_debug:
            found.setdefault(replace(package, epoch=None))
    return list(found)


def schedule_body(
    test_task_id: int,
    *,
    dist_name: str,
    dist_version: str,
    arch: str,
    package: Nevra,
    repositories: Iterable[tuple[str, str]],
) -> dict[str, Any]:
    """What ALTS's `POST /tasks/schedule` receives (CLIENTS §6.1)."""
    return {
        "runner_type": "docker",
        "dist_name": dist_name,
        "dist_version": dist_version,
        "dist_arch": arch,
        "package_name": package.name,
        "package_version": f"{package.version}-{package.release}",
        "callback_href": f"/api/v1/tests/{test_task_id}/result/",
        "repositories": [{"name": name, "baseurl": url} for name, url in repositories],
    }


def result_status(result: Mapping[str, Any]) -> TestTaskStatus:
    """FAILED when a stage, or an entry under `tests`, did not report `success: true`."""
    for key, value in result.items():
        if key == LOG_KEY:
            continue
        entries = value.values() if key == TESTS_KEY and isinstance(value, dict) else [value]
        if not all(_succeeded(entry) for entry in entries):
            return TestTaskStatus.FAILED
    return TestTaskStatus.COMPLETED


def _succeeded(entry: object) -> bool:
    return isinstance(entry, dict) and entry.get("success") is True


def result_logs(result: Mapping[str, Any]) -> list[TestLog]:
    """The logs ALTS uploaded; `null` or missing when its upload failed. Raises ValueError
    on entries that are not `{name, href}`."""
    logs = result.get(LOG_KEY)
    if logs is None:
        return []
    if not isinstance(logs, list):
        raise ValueError("result.logs must be a list of {name, href} or null")
    return [TestLog.model_validate(entry) for entry in logs]


def retry_delay(attempt: int, base_seconds: float, max_seconds: float) -> float:
    """Exponential backoff after the `attempt`-th failed dispatch (1-based), capped."""
    return float(min(max_seconds, base_seconds * 2 ** min(max(attempt - 1, 0), 30)))
