"""compose/ without a Docker engine: the file is valid Compose, and it names only real things.

- compose/docker-compose.yml validates against the Compose specification's JSON schema
  (the copy check-jsonschema ships and keeps current: `check_jsonschema` vendors
  compose-spec's `schema/compose-spec.json`, Apache-2.0);
- every service's command is a console script of pyproject.toml;
- every ALBS_* variable it sets, and every one compose/env.example mentions, is a field of
  some settings class (found in the code, tests/support/settings_catalog.py), and
  env.example mentions every such field;
- PostgreSQL is the oldest version the schema supports (13, as the original deployment).
"""

import json
import re
import tomllib
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.settings_catalog import ROOT, all_env_names

COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / "env.example"
ALBS_VARIABLE = re.compile(r"\bALBS_[A-Z0-9_]+\b")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_check_catches_a_broken_file(compose: dict[str, Any]) -> None:
    """The validation above can fail: a misspelt key and a bad type are found."""
    schema = compose_schema()
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["comand"] = ["albs-gateway"]
    broken["services"]["scheduler"]["restart"] = ["always"]
    validator = jsonschema.validators.validator_for(schema)(schema)
    paths = {tuple(e.path) for e in validator.iter_errors(broken)}
    assert ("services", "gateway") in paths
    assert ("services", "scheduler", "restart") in paths


def console_scripts() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["scripts"])


def own_image_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("albs-control-plane")
    }


def test_every_albs_service_runs_a_console_script_of_the_one_image(
    compose: dict[str, Any],
) -> None:
    ours = own_image_services(compose)
    assert {"migrate", "gateway", "scheduler", "artifacts", "auth", "gitea-bridge"} <= set(ours)
    scripts = console_scripts()
    images = {service["image"] for service in ours.values()}
    assert len(images) == 1, f"one image for every service, found {images}"
    for name, service in ours.items():
        command = service.get("command")
        assert isinstance(command, list), f"{name}: no command in exec form"
        assert command, f"{name}: an empty command"
        assert command[0] in scripts, f"{name}: {command[0]} is not in [project.scripts]"
        assert service["build"]["dockerfile"] == "compose/Dockerfile"
    assert ours["migrate"]["command"] == ["albs", "db", "upgrade"]
    assert ours["migrate"]["restart"] == "no"
    for name, service in ours.items():
        if name != "migrate":
            condition = service["depends_on"]["migrate"]["condition"]
            assert condition == "service_completed_successfully", name
    # Scaling (`--scale scheduler=3`) needs no fixed container name or host port.
    assert "container_name" not in ours["scheduler"]
    assert "ports" not in ours["scheduler"]


def test_the_dockerfile_builds_in_stages_and_runs_as_a_plain_user() -> None:
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) >= 2
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users
    assert users[-1] not in ("root", "0")


def test_the_gateway_and_the_servers_have_healthchecks(compose: dict[str, Any]) -> None:
    for name in ("gateway", "postgres", "rabbitmq", "redis", "mosquitto", "pulp"):
        assert compose["services"][name]["healthcheck"]["test"], name


def set_variables(compose: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        keys = (
            environment
            if isinstance(environment, dict)
            else [e.split("=", 1)[0] for e in environment]
        )
        for key in keys:
            if key.startswith("ALBS_"):
                found.setdefault(key, set()).add(name)
    return found


def test_every_albs_variable_the_compose_file_sets_is_a_setting(compose: dict[str, Any]) -> None:
    known = all_env_names()
    unknown = {k: sorted(v) for k, v in set_variables(compose).items() if k not in known}
    assert not unknown, f"set in docker-compose.yml, read by no settings class: {unknown}"


def documented_variables() -> set[str]:
    return set(ALBS_VARIABLE.findall(ENV_EXAMPLE.read_text()))


def test_env_example_documents_every_setting_and_only_settings() -> None:
    known = set(all_env_names())
    documented = documented_variables()
    assert not documented - known, f"not a setting: {sorted(documented - known)}"
    missing = sorted(known - documented)
    assert not missing, (
        f"compose/env.example does not mention {missing}: add a commented line with the "
        "default and what it does"
    )


def test_the_catalog_finds_settings_of_every_service() -> None:
    owners = all_env_names()
    assert {"CommonSettings", "GatewaySettings", "SchedulerSettings"} <= owners["ALBS_DATABASE_URL"]
    for name, owner in {
        "ALBS_JWT_SECRET": "GatewaySettings",
        "ALBS_LEASE_SECONDS": "SchedulerSettings",
        "ALBS_PULP_URL": "ArtifactsSettings",
        "ALBS_GITHUB_ORG": "AuthSettings",
        "ALBS_MQTT_QUEUE_QOS": "GiteaBridgeSettings",
    }.items():
        assert owner in owners[name], name


def test_compose_runs_the_postgresql_of_the_original_deployment(compose: dict[str, Any]) -> None:
    assert compose["services"]["postgres"]["image"] == "postgres:13"


def test_nginx_serves_the_api_and_pulp() -> None:
    config = (COMPOSE_DIR / "nginx.conf").read_text()
    assert "location /api/v1/" in config
    assert "location /pulp/" in config


def test_env_example_lines_are_settings_or_compose_variables(compose: dict[str, Any]) -> None:
    """Every uncommented line is NAME=VALUE; non-ALBS names are used by the compose file."""
    text = COMPOSE_FILE.read_text()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, _ = line.partition("=")
        assert sep, f"not NAME=VALUE: {line!r}"
        if not name.startswith("ALBS_"):
            assert f"${{{name}" in text, f"{name} is used nowhere in docker-compose.yml"
