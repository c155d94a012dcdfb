import pytest
from pydantic import ValidationError

from shared.contracts.build_node import BuildDone, GetTaskRequest, PingRequest, Task
from shared.contracts.builds import BuildCreate
from shared.contracts.platforms import PlatformCreate, PlatformModify


def test_node_bodies_are_flat_as_albs_node_sends_them() -> None:
    done = BuildDone.model_validate(
        {
            "task_id": 42,
            "status": "done",
            "artifacts": [
                {
                    "name": "bash-4.4.19-14.el8.src.rpm",
                    "type": "rpm",
                    "href": "/pulp/api/v3/artifacts/1/",
                },
                {"name": "albs.1.log", "type": "build_log", "href": "/pulp/api/v3/artifacts/2/"},
            ],
        }
    )
    assert [a.type for a in done.artifacts] == ["rpm", "build_log"]
    assert PingRequest.model_validate({"active_tasks": [1, 2]}).active_tasks == [1, 2]
    assert GetTaskRequest.model_validate({"supported_arches": ["x86_64", "i686"]})


@pytest.mark.parametrize(
    "body",
    [
        {"task_id": 1, "status": "ok", "artifacts": []},
        {"task_id": 1, "status": "done", "artifacts": [{"name": "a", "type": "deb", "href": "h"}]},
        {"status": "done", "artifacts": []},
    ],
)
def test_build_done_rejects_what_the_node_never_sends(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BuildDone.model_validate(body)


def test_task_requires_every_field_the_node_validates() -> None:
    with pytest.raises(ValidationError) as info:
        Task.model_validate({"id": 1, "arch": "x86_64"})
    missing = {e["loc"][0] for e in info.value.errors()}
    assert missing == {"ref", "platform", "created_by", "repositories", "linked_builds"}


def test_frontend_build_payload_is_accepted_with_extra_keys() -> None:
    body = BuildCreate.model_validate(
        {
            "platforms": [{"name": "AlmaLinux-8", "arch_list": ["x86_64", "i686"]}],
            "tasks": [
                {
                    "git_ref": "imports/c8/bash",
                    "url": "https://git.almalinux.org/rpms/bash.git",
                    "ref_type": 2,
                },
                {"url": "https://example.org/foo-1.0-1.el8.src.rpm"},
            ],
            "linked_builds": [],
            "mock_options": {},
        }
    )
    assert body.tasks[1].git_ref is None


def test_build_needs_platforms_and_refs() -> None:
    with pytest.raises(ValidationError):
        BuildCreate.model_validate({"platforms": [], "tasks": [{"url": "u"}]})
    with pytest.raises(ValidationError):
        BuildCreate.model_validate({"platforms": [{"name": "p", "arch_list": ["x"]}], "tasks": []})


def test_platform_modify_needs_only_the_name() -> None:
    assert PlatformModify.model_validate({"name": "AlmaLinux-8"}).repos is None
    with pytest.raises(ValidationError):
        PlatformCreate.model_validate({"name": "p", "type": "rpm"})
