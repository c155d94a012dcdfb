from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ENV_PREFIX, CommonSettings


class ArtifactsSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    pulp_url: str = "http://127.0.0.1:24817"
    pulp_user: str = "admin"
    pulp_password: SecretStr = SecretStr("admin")
    pulp_timeout_seconds: float = 30.0
