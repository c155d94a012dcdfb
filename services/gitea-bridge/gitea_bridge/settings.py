"""Settings of the gitea bridge: the environment (ALBS_*) first, then the original YAML file.

The MQTT names, defaults and the YAML file (`albs-gitea-listener-config.yaml`) are those of
the original gitea listener deployment (REFERENCE §7.1), so its config file works unchanged.
The file is read from ALBS_GITEA_BRIDGE_CONFIG, else from the working directory when present.
"""

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from shared.contracts.builds import BuildCreatePlatform
from shared.settings import ENV_PREFIX, CommonSettings

CONFIG_PATH_VARIABLE = f"{ENV_PREFIX}GITEA_BRIDGE_CONFIG"
LEGACY_CONFIG_FILE = "albs-gitea-listener-config.yaml"


class BuildRule(BaseModel):
    """Which new tags become builds, and on which platforms and arches.

    `repositories` and `tags` are shell patterns (`rpms/*`, `imports/c8/*`) matched against
    the repository's full name and the tag name; the first matching rule wins.
    """

    repositories: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    tags: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    platforms: list[BuildCreatePlatform] = Field(min_length=1)


def _config_file() -> Path | None:
    configured = os.environ.get(CONFIG_PATH_VARIABLE)
    if configured:
        return Path(configured)
    legacy = Path(LEGACY_CONFIG_FILE)
    return legacy if legacy.is_file() else None


class GiteaBridgeSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    # Only read to report a wrong path clearly; the file itself is read by the YAML source.
    gitea_bridge_config: Path | None = None

    mqtt_queue_host: str = "127.0.0.1"
    mqtt_queue_port: int = 1883
    mqtt_queue_topic_unmodified: str = "gitea-webhooks-unmodified"
    mqtt_queue_topic_modified: str = "gitea-webhooks-modified"
    mqtt_queue_qos: int = Field(default=2, ge=0, le=2)
    mqtt_client_id: str = Field(default="albs_gitea_listener", min_length=1)
    mqtt_queue_clean_session: bool = False
    mqtt_queue_username: str | None = None
    mqtt_queue_password: SecretStr | None = None
    mqtt_reconnect_max_seconds: int = Field(default=60, ge=1)
    # A message whose processing fails (Redis or RabbitMQ down) is retried with this backoff.
    processing_retry_max_seconds: float = Field(default=30.0, gt=0)
    shutdown_drain_seconds: float = Field(default=10.0, ge=0)

    # The periodic full refresh of the cache from the Gitea API (the old git cacher's job).
    gitea_refresh_enabled: bool = True
    gitea_api_url: str = "https://git.almalinux.org/api/v1/"
    gitea_api_token: SecretStr | None = None
    gitea_organizations: list[str] = Field(default_factory=lambda: ["rpms", "modules"])
    gitea_refresh_interval_seconds: float = Field(default=600.0, gt=0)
    gitea_page_size: int = Field(default=50, ge=1, le=1000)
    gitea_concurrency: int = Field(default=5, ge=1, le=100)
    gitea_timeout_seconds: float = Field(default=30.0, gt=0)
    gitea_attempts: int = Field(default=3, ge=1)
    gitea_retry_backoff_seconds: float = Field(default=1.0, ge=0)

    # Builds on new tags (off by default): the create-build RPC, sent as this service account
    # (`albs token create --service gitea-bridge` creates it; the builds are owned by it).
    build_on_tags: bool = False
    build_account: str = Field(default="gitea-bridge", min_length=1)
    build_rules: list[BuildRule] = Field(default_factory=list, validate_default=True)
    build_request_timeout_seconds: float = Field(default=10.0, gt=0)
    build_request_attempts: int = Field(default=5, ge=1)
    build_retry_backoff_seconds: float = Field(default=1.0, ge=0)
    # A message whose processing fails for a reason other than an outage goes to the
    # dead-letter queue after this many attempts; the next message is then processed.
    mqtt_max_failures: int = Field(default=5, ge=1)
    # The original listener's way to reach the builds API; read for compatibility, unused.
    albs_address: str = "http://127.0.0.1:8088"
    albs_jwt_token: SecretStr | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_settings = YamlConfigSettingsSource(settings_cls, yaml_file=_config_file())
        return init_settings, env_settings, dotenv_settings, yaml_settings, file_secret_settings

    @field_validator("gitea_bridge_config")
    @classmethod
    def _config_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"the config file {path} does not exist")
        return path

    @field_validator("mqtt_queue_username", "mqtt_queue_password", "albs_jwt_token", mode="before")
    @classmethod
    def _empty_means_none(cls, value: Any) -> Any:
        # The original YAML ships `mqtt_queue_username: ''`: no credentials, not an error.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("gitea_organizations")
    @classmethod
    def _organizations(cls, value: list[str]) -> list[str]:
        cleaned = [org.strip() for org in value if org.strip()]
        if len(cleaned) != len(set(cleaned)):
            raise ValueError("an organization is listed twice")
        return cleaned

    @field_validator("build_rules")
    @classmethod
    def _rules_for_builds(cls, value: list[BuildRule], info: ValidationInfo) -> list[BuildRule]:
        if not value and info.data.get("build_on_tags"):
            raise ValueError("build_on_tags is on, so at least one rule is required")
        return value

    @property
    def topics(self) -> list[str]:
        return [self.mqtt_queue_topic_unmodified, self.mqtt_queue_topic_modified]
