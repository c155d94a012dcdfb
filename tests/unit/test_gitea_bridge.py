"""The bridge's pure parts: settings from the original YAML, webhook parsing, events, rules."""

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from gitea_bridge.builds import build_request, matching_rule
from gitea_bridge.consumer import parse_push
from gitea_bridge.mqtt import MqttDelivery
from gitea_bridge.pushes import event_for, event_id, ref_change
from gitea_bridge.settings import BuildRule, GiteaBridgeSettings
from shared.contracts.builds import BuildCreate, BuildCreatePlatform
from shared.contracts.gitea import BranchPushed, GiteaPushEvent, TagPushed
from shared.projects_cache import RefKind
from shared.settings import load_settings

WEBHOOKS = Path(__file__).parent.parent / "integration" / "data" / "gitea"
LEGACY_YAML = WEBHOOKS / "albs-gitea-listener-config.yaml"
WEBHOOK_KINDS = ("branch_push", "tag_push", "new_repository", "branch_deleted")


def push(kind: str) -> GiteaPushEvent:
    return GiteaPushEvent.model_validate_json((WEBHOOKS / f"{kind}.json").read_bytes())


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env, no config file here
    for name in ("ALBS_GITEA_BRIDGE_CONFIG", "ALBS_MQTT_QUEUE_HOST", "ALBS_BUILD_ON_TAGS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_the_original_yaml_file_configures_the_bridge(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALBS_GITEA_BRIDGE_CONFIG", str(LEGACY_YAML))
    settings = GiteaBridgeSettings()
    assert settings.mqtt_queue_host == "mosquitto"
    assert settings.mqtt_queue_port == 1883
    assert settings.topics == ["gitea-webhooks-unmodified", "gitea-webhooks-modified"]
    assert settings.mqtt_queue_qos == 2
    assert settings.mqtt_client_id == "albs_gitea_listener"
    assert settings.mqtt_queue_clean_session is False
    assert settings.albs_address == "http://web_server:8080"
    # Empty strings in the YAML mean "not set", not a validation error (REFERENCE §11.25).
    assert settings.mqtt_queue_username is None
    assert settings.mqtt_queue_password is None
    assert settings.albs_jwt_token is None


def test_the_environment_wins_over_the_yaml_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(LEGACY_YAML, clean_env / "albs-gitea-listener-config.yaml")  # the working dir
    monkeypatch.setenv("ALBS_MQTT_QUEUE_HOST", "broker.example.org")
    settings = GiteaBridgeSettings()
    assert settings.mqtt_queue_host == "broker.example.org"
    assert settings.mqtt_client_id == "albs_gitea_listener"


def test_build_rules_come_from_the_yaml_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = clean_env / "bridge.yaml"
    config.write_text(
        "build_on_tags: true\n"
        "albs_jwt_token: a-token\n"
        "build_rules:\n"
        "  - repositories: ['rpms/*']\n"
        "    platforms: [{name: AlmaLinux-8, arch_list: [x86_64, aarch64]}]\n"
    )
    monkeypatch.setenv("ALBS_GITEA_BRIDGE_CONFIG", str(config))
    settings = GiteaBridgeSettings()
    assert settings.build_rules == [
        BuildRule(
            repositories=["rpms/*"],
            platforms=[BuildCreatePlatform(name="AlmaLinux-8", arch_list=["x86_64", "aarch64"])],
        )
    ]
    assert "a-token" not in repr(settings)


def test_a_missing_config_file_and_an_incomplete_build_trigger_are_clear_errors(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALBS_GITEA_BRIDGE_CONFIG", str(clean_env / "absent.yaml"))
    monkeypatch.setenv("ALBS_BUILD_ON_TAGS", "true")
    with pytest.raises(SystemExit):
        load_settings(GiteaBridgeSettings)
    err = capsys.readouterr().err
    assert "ALBS_GITEA_BRIDGE_CONFIG" in err
    assert "absent.yaml does not exist" in err
    assert "ALBS_BUILD_RULES" in err


def test_the_four_webhook_fixtures_parse_and_say_what_changed() -> None:
    changes = {kind: ref_change(push(kind)) for kind in WEBHOOK_KINDS}
    assert {k: (c.kind, c.name, c.deleted) for k, c in changes.items() if c} == {
        "branch_push": (RefKind.BRANCH, "c8", False),
        "tag_push": (RefKind.TAG, "imports/c8/bash-4.4.19-14.el8", False),
        "new_repository": (RefKind.BRANCH, "a8", False),
        "branch_deleted": (RefKind.BRANCH, "c8-stream-rhel", True),
    }


def test_other_refs_are_ignored() -> None:
    pull = push("branch_push").model_copy(update={"ref": "refs/pull/4/head"})
    assert ref_change(pull) is None


def test_events_carry_the_push_but_not_the_secret() -> None:
    tag = push("tag_push").model_copy(update={"secret": "webhook-secret"})
    change = ref_change(tag)
    assert change is not None
    event = event_for(tag, change)
    assert isinstance(event, TagPushed)
    assert event.routing_key == "gitea.tag"
    assert (event.full_name, event.tag, event.pusher) == (
        "rpms/bash",
        "imports/c8/bash-4.4.19-14.el8",
        "autopatch",
    )
    assert "webhook-secret" not in event.model_dump_json()
    branch = push("new_repository")
    branch_change = ref_change(branch)
    assert branch_change is not None
    pushed = event_for(branch, branch_change)
    assert isinstance(pushed, BranchPushed)
    assert pushed.routing_key == "gitea.push"
    assert len(pushed.commits) == 2


def test_event_ids_are_the_same_for_the_same_push_only() -> None:
    ids = {event_id(push(kind)) for kind in WEBHOOK_KINDS}
    assert len(ids) == len(WEBHOOK_KINDS)
    assert event_id(push("tag_push")) == event_id(push("tag_push"))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{not json",
        b"[]",
        b'{"ref": "refs/heads/c8"}',
        b'{"ref": "refs/heads/c8", "repository": {"name": "x", "full_name": "x", "clone_url": "u"}}',
        b'{"ref": "", "repository": {"name": "x", "full_name": "o/x", "clone_url": "u"}}',
    ],
)
def test_malformed_payloads_are_dropped(payload: bytes) -> None:
    assert parse_push(MqttDelivery("topic/a", payload, mid=1, qos=2)) is None


def test_a_minimal_push_is_enough() -> None:
    minimal = b'{"ref": "refs/tags/v1", "repository": {"name": "x", "full_name": "o/x", "clone_url": "u"}}'
    parsed = parse_push(MqttDelivery("topic/a", minimal, mid=1, qos=2))
    assert parsed is not None
    assert parsed.commits == []


RULES = [
    BuildRule(
        repositories=["rpms/*"],
        tags=["imports/c8/*"],
        platforms=[BuildCreatePlatform(name="AlmaLinux-8", arch_list=["x86_64"])],
    ),
    BuildRule(
        repositories=["rpms/kernel", "modules/*"],
        platforms=[BuildCreatePlatform(name="AlmaLinux-9", arch_list=["x86_64", "aarch64"])],
    ),
]


@pytest.mark.parametrize(
    ("full_name", "tag", "platform"),
    [
        ("rpms/bash", "imports/c8/bash-1", "AlmaLinux-8"),
        ("rpms/kernel", "imports/c8/kernel-1", "AlmaLinux-8"),  # the first match wins
        ("rpms/kernel", "v5", "AlmaLinux-9"),
        ("modules/perl", "anything", "AlmaLinux-9"),
        ("rpms/bash", "v5", None),
        ("forks/bash", "imports/c8/bash-1", None),
    ],
)
def test_rules_pick_the_platforms(full_name: str, tag: str, platform: str | None) -> None:
    rule = matching_rule(RULES, full_name, tag)
    assert (rule.platforms[0].name if rule else None) == platform


def test_the_build_request_is_valid_unlike_the_original_one() -> None:
    tag = push("tag_push")
    change = ref_change(tag)
    assert change is not None
    event = event_for(tag, change)
    assert isinstance(event, TagPushed)
    body = build_request(RULES[0], event).model_dump(mode="json")
    assert BuildCreate.model_validate(body).tasks[0].git_ref == "imports/c8/bash-4.4.19-14.el8"
    assert body["linked_builds"] == []
    assert body["mock_options"] == {}
    with pytest.raises(ValidationError):  # what the original listener sent (REFERENCE §7.1)
        BuildCreate.model_validate(
            {"platforms": ["Alma84"], "tasks": [{"url": event.clone_url, "git_ref": event.tag}]}
        )
