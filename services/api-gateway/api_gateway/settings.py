from pydantic import SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ENV_PREFIX, CommonSettings, require_strong_secret


class GatewaySettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = 8088
    jwt_secret: SecretStr
    rpc_timeout_seconds: float = 10.0

    @field_validator("jwt_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr) -> SecretStr:
        return require_strong_secret(value, "ALBS_JWT_SECRET")
