"""Repository names and where each reported file goes, decided from the file name's NEVRA."""

import pytest

from artifacts.filing import destination
from artifacts.naming import parse_rpm_file_name
from artifacts.repositories import planned_repositories
from shared.contracts.build_node import BuildTaskFinished, ReportedArtifact
from shared.contracts.builds import BuildCreated, PlannedPlatform, PlannedTask


def finished(arch: str = "x86_64", task_id: int = 12) -> BuildTaskFinished:
    return BuildTaskFinished(
        task_id=task_id,
        build_id=7,
        attempt=1,
        status="done",
        platform="AlmaLinux-8",
        arch=arch,
        artifacts=[],
    )


def rpm(name: str) -> ReportedArtifact:
    return ReportedArtifact(name=name, type="rpm", artifact_href="/pulp/api/v3/artifacts/x/")


@pytest.mark.parametrize(
    ("file_name", "parts"),
    [
        ("bash-4.4.19-14.el8.x86_64.rpm", ("bash", None, "4.4.19", "14.el8", "x86_64")),
        ("bash-4.4.19-14.el8.src.rpm", ("bash", None, "4.4.19", "14.el8", "src")),
        ("perl-DBI-1:1.641-3.module.noarch.rpm", ("perl-DBI", "1", "1.641", "3.module", "noarch")),
        (
            "python3-debuginfo-tools-1-2.i686.rpm",
            ("python3-debuginfo-tools", None, "1", "2", "i686"),
        ),
    ],
)
def test_rpm_file_names_parse_as_nevra(
    file_name: str, parts: tuple[str, str | None, str, str, str]
) -> None:
    nevra = parse_rpm_file_name(file_name)
    assert nevra is not None
    assert (nevra.name, nevra.epoch, nevra.version, nevra.release, nevra.arch) == parts


@pytest.mark.parametrize("file_name", ["build.log", "noversion.x86_64.rpm", "a-b.rpm", "x-1-2.rpm"])
def test_names_that_are_no_nevra_are_recognised(file_name: str) -> None:
    assert parse_rpm_file_name(file_name) is None


@pytest.mark.parametrize(
    ("file_name", "repo", "debug"),
    [
        ("bash-4.4.19-14.el8.src.rpm", "AlmaLinux-8-src-7-br", False),
        ("bash-4.4.19-14.el8.x86_64.rpm", "AlmaLinux-8-x86_64-7-br", False),
        ("bash-doc-4.4.19-14.el8.noarch.rpm", "AlmaLinux-8-x86_64-7-br", False),
        ("bash-debuginfo-4.4.19-14.el8.x86_64.rpm", "AlmaLinux-8-x86_64-7-debug-br", True),
        ("bash-debugsource-4.4.19-14.el8.x86_64.rpm", "AlmaLinux-8-x86_64-7-debug-br", True),
        (
            "kernel-debuginfo-common-x86_64-4.18.0-348.el8.x86_64.rpm",
            "AlmaLinux-8-x86_64-7-debug-br",
            True,
        ),
        # The reference's regex wanted `-debuginfo-<digit>`; these names are not debug packages.
        ("python3-debuginfo-tools-1-2.x86_64.rpm", "AlmaLinux-8-x86_64-7-br", False),
        ("debuginfod-0.185-1.el8.x86_64.rpm", "AlmaLinux-8-x86_64-7-br", False),
    ],
)
def test_each_rpm_goes_to_the_repository_its_nevra_names(
    file_name: str, repo: str, debug: bool
) -> None:
    target = destination(finished(), rpm(file_name))
    assert (target.repo_name, target.debug, target.is_log) == (repo, debug, False)


def test_logs_go_to_the_log_repository_of_exactly_this_task() -> None:
    log = ReportedArtifact(name="mock_root.1.log", type="build_log", artifact_href="/x/")
    assert destination(finished("i686", task_id=12), log).repo_name == (
        "AlmaLinux-8-i686-7-artifacts-12"
    )
    assert destination(finished("i686", task_id=112), log).repo_name == (
        "AlmaLinux-8-i686-7-artifacts-112"
    )


def test_a_build_plans_src_arch_and_debug_repositories_per_platform() -> None:
    event = BuildCreated(
        build_id=3,
        platforms=[
            PlannedPlatform(platform_id=1, name="P8", arch_list=["x86_64", "i686"]),
            PlannedPlatform(platform_id=2, name="P9", arch_list=["aarch64"]),
        ],
        tasks=[PlannedTask(task_id=1, platform="P8", arch="x86_64")],
    )
    planned = [(p.name, p.arch, p.debug, p.read_by_nodes) for p in planned_repositories(event)]
    # Only what a node's task lists (its arch and debug repositories) is published empty.
    assert planned == [
        ("P8-src-3-br", "src", False, False),
        ("P8-x86_64-3-br", "x86_64", False, True),
        ("P8-i686-3-br", "i686", False, True),
        ("P8-x86_64-3-debug-br", "x86_64", True, True),
        ("P8-i686-3-debug-br", "i686", True, True),
        ("P9-src-3-br", "src", False, False),
        ("P9-aarch64-3-br", "aarch64", False, True),
        ("P9-aarch64-3-debug-br", "aarch64", True, True),
    ]
