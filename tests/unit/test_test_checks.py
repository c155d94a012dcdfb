"""Which packages get a test, what ALTS is asked, what its result means (scheduler/checks.py)."""

from typing import Any

import pytest

from artifacts.alts_logs import alts_log_repo_name
from scheduler.checks import (
    packages_to_test,
    result_logs,
    result_status,
    retry_delay,
    schedule_body,
)
from shared.db.models import TestTaskStatus
from shared.rpm_names import Nevra

BUILT = [
    "bash-4.4.19-14.el8.src.rpm",
    "bash-4.4.19-14.el8.x86_64.rpm",
    "bash-doc-4.4.19-14.el8.noarch.rpm",
    "bash-debuginfo-4.4.19-14.el8.x86_64.rpm",
    "bash-debugsource-4.4.19-14.el8.x86_64.rpm",
    "kernel-debuginfo-common-x86_64-4.18.0-1.el8.x86_64.rpm",
    "perl-Foo-1:2.0-1.el8.x86_64.rpm",
    "bash-4.4.19-14.el8.x86_64.rpm",  # reported twice
    "not-a-package.txt",
]


def test_binary_packages_get_one_test_each_and_nothing_else_does() -> None:
    assert packages_to_test(BUILT) == [
        Nevra("bash", None, "4.4.19", "14.el8", "x86_64"),
        Nevra("bash-doc", None, "4.4.19", "14.el8", "noarch"),
        Nevra("perl-Foo", None, "2.0", "1.el8", "x86_64"),
    ]


def test_a_task_with_only_a_source_and_debug_packages_gets_no_test() -> None:
    assert packages_to_test(["a-1-1.src.rpm", "a-debuginfo-1-1.x86_64.rpm"]) == []


def test_the_schedule_body_is_what_alts_reads() -> None:
    body = schedule_body(
        17,
        dist_name="almalinux",
        dist_version="8",
        arch="x86_64",
        package=Nevra("bash", None, "4.4.19", "14.el8", "x86_64"),
        repositories=[("AlmaLinux-8-x86_64-5-br", "http://pulp/builds/AlmaLinux-8-x86_64-5-br/")],
    )
    assert body == {
        "runner_type": "docker",
        "dist_name": "almalinux",
        "dist_version": "8",
        "dist_arch": "x86_64",
        "package_name": "bash",
        "package_version": "4.4.19-14.el8",
        "callback_href": "/api/v1/tests/17/result/",
        "repositories": [
            {
                "name": "AlmaLinux-8-x86_64-5-br",
                "baseurl": "http://pulp/builds/AlmaLinux-8-x86_64-5-br/",
            }
        ],
    }


PASSED: dict[str, Any] = {
    "initialize_terraform": {"success": True},
    "install_package": {"success": True},
    "tests": {"package_integrity_tests": {"success": True, "output": "ok"}},
    "logs": [{"name": "a.log", "href": "/pulp/api/v3/artifacts/1/"}],
}


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (PASSED, TestTaskStatus.COMPLETED),
        ({}, TestTaskStatus.COMPLETED),
        ({**PASSED, "logs": None}, TestTaskStatus.COMPLETED),
        ({**PASSED, "install_package": {"success": False}}, TestTaskStatus.FAILED),
        ({**PASSED, "tests": {"t": {"success": False, "output": "not ok"}}}, TestTaskStatus.FAILED),
        ({**PASSED, "tests": {"t": {"output": "no verdict"}}}, TestTaskStatus.FAILED),
        ({**PASSED, "stop_environment": "broken"}, TestTaskStatus.FAILED),
        ({**PASSED, "stop_environment": {"success": "yes"}}, TestTaskStatus.FAILED),
    ],
)
def test_status_from_a_result(result: dict[str, Any], status: TestTaskStatus) -> None:
    assert result_status(result) == status


def test_logs_of_a_result() -> None:
    assert [(log.name, log.href) for log in result_logs(PASSED)] == [
        ("a.log", "/pulp/api/v3/artifacts/1/")
    ]
    assert result_logs({"logs": None}) == []
    assert result_logs({}) == []
    with pytest.raises(ValueError, match="list"):
        result_logs({"logs": "a.log"})
    with pytest.raises(ValueError, match="href"):
        result_logs({"logs": [{"name": "a.log"}]})


def test_retries_back_off_exponentially_up_to_the_cap() -> None:
    assert [retry_delay(n, 5, 60) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert retry_delay(10_000, 5, 60) == 60


def test_the_log_repository_is_named_as_the_frontend_reads_it() -> None:
    assert alts_log_repo_name(12, 3) == "test_logs-btid-12-tr-3"
