"""The stored albs-node Task body, built from plain facts (no database)."""

from typing import Any

from scheduler.task_bodies import BuildFacts, PlatformFacts, Repo, TaskFacts, body, describe
from shared.contracts.build_node import Task

PLATFORM_DATA: dict[str, Any] = {
    "mock": {"package_manager": "dnf"},
    "yum": {"exclude": "kernel*"},
    "definitions": {"vendor": "AlmaLinux"},
    "mock_dist": "el8",
}


def platform(kind: str = "rpm") -> PlatformFacts:
    return PlatformFacts(
        name="AlmaLinux-8",
        type=kind,
        data=PLATFORM_DATA,
        repos=[
            Repo("baseos", "https://m/baseos/x86_64/", "x86_64", "rpm"),
            Repo("baseos", "https://m/baseos/i686/", "i686", "rpm"),
        ],
    )


def build(**extra: Any) -> BuildFacts:
    facts: dict[str, Any] = {
        "mock_options": None,
        "user_name": "jdoe",
        "user_email": "jdoe@example.org",
        "repos": [
            Repo("b-x86_64-br", "http://pulp/b-x86_64-br/", "x86_64", "rpm"),
            Repo("b-x86_64-artifacts", "http://pulp/b-x86_64-artifacts/", "x86_64", "build_log"),
            Repo("b-src-br", "http://pulp/b-src-br/", "src", "rpm"),
        ],
        "linked": [(7, [Repo("l-x86_64-br", "http://pulp/l-x86_64-br/", "x86_64", "rpm")])],
        **extra,
    }
    return BuildFacts(**facts)


TASK = TaskFacts(
    id=42,
    build_id=9,
    platform_id=3,
    arch="x86_64",
    url="https://git.example.org/bash.git",
    git_ref="v1",
)


def test_body_has_every_field_albs_node_validates() -> None:
    stored = body(TASK, platform(), build())
    assert set(stored) == {
        "id",
        "arch",
        "ref",
        "platform",
        "created_by",
        "repositories",
        "linked_builds",
    }
    assert Task.model_validate(stored) == describe(TASK, platform(), build())
    assert stored["ref"] == {"url": "https://git.example.org/bash.git", "git_ref": "v1"}
    assert stored["created_by"] == {"name": "jdoe", "email": "jdoe@example.org"}
    assert stored["linked_builds"] == [7]


def test_repositories_are_the_tasks_arch_in_platform_build_linked_order_without_logs() -> None:
    stored = body(TASK, platform(), build())
    assert stored["repositories"] == [
        {"name": "baseos", "url": "https://m/baseos/x86_64/"},
        {"name": "b-x86_64-br", "url": "http://pulp/b-x86_64-br/"},
        {"name": "l-x86_64-br", "url": "http://pulp/l-x86_64-br/"},
    ]


def test_mock_options_are_merged_and_the_platform_data_is_left_alone() -> None:
    options = {"with": ["docs"], "yum_exclude": ["foo*"], "target_arch": "x86_64_v2"}
    data = body(TASK, platform(), build(mock_options=options))["platform"]["data"]
    assert data["mock"] == {"package_manager": "dnf", "target_arch": "x86_64_v2"}
    assert data["yum"] == {"exclude": "kernel* foo*"}
    assert data["definitions"] == {"vendor": "AlmaLinux", "_with_docs": "--with-docs"}
    assert PLATFORM_DATA["yum"] == {"exclude": "kernel*"}


def test_a_task_without_git_ref_or_links_still_carries_every_field() -> None:
    bare = TaskFacts(
        id=1, build_id=1, platform_id=1, arch="i686", url="https://x/a.src.rpm", git_ref=None
    )
    stored = body(bare, platform("deb"), build(linked=[], repos=[]))
    assert stored["ref"] == {"url": "https://x/a.src.rpm", "git_ref": None}
    assert stored["platform"]["type"] == "deb"
    assert stored["linked_builds"] == []
    assert stored["repositories"] == [{"name": "baseos", "url": "https://m/baseos/i686/"}]
