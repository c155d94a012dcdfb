"""The decisions of signing, over plain data: may a build be signed, which packages a task
covers, and what a node's report does to its task (SIGNING.md §5)."""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from shared.contracts.signing import FrozenPackage, SignTaskComplete
from shared.db.models import SignTaskStatus
from shared.errors import AlbsError, Conflict
from shared.rpm_names import debug_repo_name, parse_rpm_file_name, rpm_repo_name


@dataclass(frozen=True)
class BuildForSigning:
    finished: bool
    signed: bool
    has_task_in_flight: bool
    source_rpms: int
    binary_rpms: int


def refusal_to_sign(build_id: int, build: BuildForSigning) -> str | None:
    """Why this build cannot get a sign task now (a 409), or None."""
    if build.has_task_in_flight:
        return f"Build {build_id} is already queued for signing or being signed."
    if build.signed:
        return f"Build {build_id} is already signed."
    if not build.finished:
        return f"Build {build_id} has not finished; sign it when every task is done."
    if not build.source_rpms or not build.binary_rpms:
        return f"Build {build_id} has no source and binary RPMs to sign."
    return None


@dataclass(frozen=True)
class CurrentRpm:
    """An RPM of the build's tasks' current attempts, as filed into the build's repositories."""

    artifact_id: int
    name: str
    platform: str
    task_arch: str


@dataclass(frozen=True)
class BuildRepo:
    id: int
    name: str
    url: str


def download_url(repo_url: str, file_name: str) -> str:
    """Where the distribution serves it: Pulp lays packages out under the lower-cased first
    letter (an upper-case one would 404, SIGNING.md §2.5)."""
    base = repo_url if repo_url.endswith("/") else f"{repo_url}/"
    return f"{base}Packages/{file_name[:1].lower()}/{file_name}"


def _repo_name(build_id: int, rpm: CurrentRpm) -> tuple[bool, str]:
    nevra = parse_rpm_file_name(rpm.name)
    if nevra is not None and nevra.is_source:
        return True, rpm_repo_name(rpm.platform, "src", build_id)
    if nevra is not None and nevra.is_debug:
        return False, debug_repo_name(rpm.platform, rpm.task_arch, build_id)
    return False, rpm_repo_name(rpm.platform, rpm.task_arch, build_id)


@dataclass
class _Entry:
    is_source: bool
    arch: str
    name: str
    repo: BuildRepo
    artifact_ids: list[int]


def plan_packages(
    build_id: int, rpms: Sequence[CurrentRpm], repos: Sequence[BuildRepo]
) -> list[FrozenPackage]:
    """One entry per file in a repository, source RPMs first: the N source RPM rows of an
    N-arch build share one file in the src repository, so they share one entry (its id is
    the first artifact's). Ids are build artifact ids: one namespace (SIGNING.md §4.4)."""
    by_name = {r.name: r for r in repos}
    entries: dict[tuple[int, str], _Entry] = {}
    for rpm in sorted(rpms, key=lambda r: r.artifact_id):
        is_source, repo_name = _repo_name(build_id, rpm)
        repo = by_name.get(repo_name)
        if repo is None:
            continue  # filed nowhere this build still has: nothing to sign there
        entry = entries.get((repo.id, rpm.name))
        if entry is None:
            arch = "src" if is_source else rpm.task_arch
            entries[(repo.id, rpm.name)] = _Entry(is_source, arch, rpm.name, repo, [])
            entry = entries[(repo.id, rpm.name)]
        entry.artifact_ids.append(rpm.artifact_id)
    ordered = sorted(entries.values(), key=lambda e: (not e.is_source, e.artifact_ids[0]))
    return [
        FrozenPackage(
            id=e.artifact_ids[0],
            name=e.name,
            arch=e.arch,
            type="rpm",
            download_url=download_url(e.repo.url, e.name),
            artifact_ids=e.artifact_ids,
            repository_id=e.repo.id,
        )
        for e in ordered
    ]


class BadReport(AlbsError):
    status_code = 400


@dataclass(frozen=True)
class TaskForCompletion:
    task_id: int
    build_id: int
    status: int
    node_id: str | None
    package_ids: frozenset[int]
    # The report taken earlier: None before any; {} for a failure; else id -> href.
    accepted: dict[int, str] | None
    canceled_by: str | None = None


class Verdict(Enum):
    SUCCEEDED = "succeeded"  # take the signed files: Pulp work follows
    FAILED = "failed"  # the node could not sign
    REPEATED = "repeated"  # the report taken already: answer success again, change nothing


def signed_hrefs(report: SignTaskComplete) -> dict[int, str]:
    return {p.id: p.href for p in report.packages or []}


def judge_completion(
    task: TaskForCompletion, node_id: str | None, report: SignTaskComplete
) -> Verdict:
    """What a node's report does; raises the 4xx that refuses it. The first report taken
    decides; a repeat of it is answered alike (the node sends `success: false` after any
    answer that is not `{"success": true}`), a contradicting one is a conflict."""
    if report.build_id != task.build_id:
        raise Conflict(
            f"Sign task {task.task_id} signs build {task.build_id}, not build {report.build_id}."
        )
    if task.node_id is None or task.node_id != node_id:
        raise Conflict(f"Sign task {task.task_id} is not held by {node_id}.")
    if task.canceled_by is not None:
        return _after_cancel(task.task_id, task.canceled_by, report)
    if task.accepted is not None:
        if _same_report(task.accepted, report):
            return Verdict.REPEATED
        raise Conflict(f"Sign task {task.task_id} was already reported otherwise.")
    if task.status != SignTaskStatus.IN_PROGRESS:
        raise Conflict(
            f"Sign task {task.task_id} is no longer held by {node_id} (its lease ran out)."
        )
    if not report.success:
        return Verdict.FAILED
    _check_packages(task, report)
    return Verdict.SUCCEEDED


def _after_cancel(task_id: int, canceled_by: str, report: SignTaskComplete) -> Verdict:
    """The holder's late success is refused; its failure report agrees with the task's end and
    is answered alike with no effect: the real node follows any answer but `{"success":
    true}` with a failure report, and exits if that one is refused too (SIGNING.md §4.6)."""
    if report.success:
        raise Conflict(f"Sign task {task_id} was canceled by {canceled_by}.")
    return Verdict.REPEATED


def _same_report(accepted: dict[int, str], report: SignTaskComplete) -> bool:
    if not accepted:
        return not report.success
    return report.success and signed_hrefs(report) == accepted


def _check_packages(task: TaskForCompletion, report: SignTaskComplete) -> None:
    reported = [p.id for p in report.packages or []]
    unknown = sorted(set(reported) - task.package_ids)
    if unknown:
        raise BadReport(f"Sign task {task.task_id} has no packages with ids {unknown}.")
    if len(reported) != len(set(reported)):
        raise BadReport("A package id is reported twice.")
    missing = sorted(task.package_ids - set(reported))
    if missing:
        raise BadReport(f"Sign task {task.task_id}: no signed file for packages {missing}.")


@dataclass(frozen=True)
class TaskForCancel:
    task_id: int
    status: int
    # The node's success report was taken: the signed files are being put in place.
    report_taken: bool


def refusal_to_cancel(task: TaskForCancel) -> str | None:
    """Why this task cannot be canceled (a 409), or None. Only a waiting or claimed task can;
    once its signed files are being swapped in, the swap decides how it ends."""
    if task.status not in (SignTaskStatus.IDLE, SignTaskStatus.IN_PROGRESS):
        return f"Sign task {task.task_id} has already finished."
    if task.report_taken:
        return (
            f"Sign task {task.task_id} was signed and its files are being put in place; "
            "it completes or fails on its own."
        )
    return None


def cancel_message(canceled_by: str) -> str:
    return f"Canceled by {canceled_by}."
