from pydantic import SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ENV_PREFIX, CommonSettings, require_strong_secret


class AuthSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    jwt_secret: SecretStr
    # People log in again after a day; nodes and services hold long-lived tokens.
    user_token_lifetime_seconds: int = 86_400
    machine_token_lifetime_seconds: int = 365 * 86_400

    @field_validator("jwt_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr) -> SecretStr:
        return require_strong_secret(value, "ALBS_JWT_SECRET")
