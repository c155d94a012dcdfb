from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ENV_PREFIX, CommonSettings


class GiteaBridgeSettings(CommonSettings):
    """The MQTT names and defaults are those of the original gitea listener deployment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    mqtt_queue_host: str = "127.0.0.1"
    mqtt_queue_port: int = 1883
    mqtt_queue_topic_unmodified: str = "gitea-webhooks-unmodified"
    mqtt_queue_topic_modified: str = "gitea-webhooks-modified"
    mqtt_queue_qos: int = 2
    mqtt_client_id: str = "albs_gitea_listener"
    mqtt_queue_clean_session: bool = False
    mqtt_queue_username: str | None = None
    mqtt_queue_password: SecretStr | None = None
    albs_address: str = "http://127.0.0.1:8088"
