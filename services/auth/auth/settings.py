from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ENV_PREFIX, CommonSettings, require_strong_secret


class AuthSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    jwt_secret: SecretStr
    # People log in again after a day; nodes and services hold long-lived tokens.
    user_token_lifetime_seconds: int = Field(default=86_400, gt=0)
    machine_token_lifetime_seconds: int = Field(default=365 * 86_400, gt=0)

    # The GitHub OAuth app. Without it the server runs, but login answers 503.
    github_client_id: str | None = None
    github_client_secret: SecretStr | None = Field(default=None, validate_default=True)
    # GitHub Enterprise Server: web https://HOST, API https://HOST/api/v3.
    github_web_url: str = "https://github.com"
    github_api_url: str = "https://api.github.com"
    # Only active members of this organization may log in.
    github_org: str = Field(default="AlmaLinux", min_length=1)
    github_timeout_seconds: float = Field(default=5.0, gt=0)
    # The whole login (four GitHub calls, then the database) must end before the gateway's
    # RPC timeout (ALBS_RPC_TIMEOUT_SECONDS, 10 s), so the person gets GitHub's answer, not 503.
    login_deadline_seconds: float = Field(default=8.0, gt=0)

    @field_validator("jwt_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr) -> SecretStr:
        return require_strong_secret(value, "ALBS_JWT_SECRET")

    @field_validator("github_client_secret")
    @classmethod
    def _client_pair(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        has_id = bool(info.data.get("github_client_id"))
        if has_id and value is None:
            raise ValueError("is required when ALBS_GITHUB_CLIENT_ID is set")
        if value is not None and not has_id:
            raise ValueError("is set but ALBS_GITHUB_CLIENT_ID is not; set both or neither")
        return value

    @field_validator("github_web_url", "github_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")
