from pydantic import Field, SecretStr, field_validator
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
    # Reads only, each connection held for one query's length, never across an RPC.
    db_max_overflow: int = Field(default=5, ge=0, le=50)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    # How long a user behind a token stays cached; changes evict it at once (NOTIFY).
    auth_cache_seconds: float = Field(default=60.0, ge=0)
    # A request body larger than this answers 413 before it is read.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # How often the gateway asks RabbitMQ whether each RPC queue has a consumer.
    rpc_consumer_check_seconds: float = Field(default=1.0, gt=0)
    redis_timeout_seconds: float = Field(default=2.0, gt=0)
    # asyncpg connections for get_task's idle check (is anything runnable for the node?).
    idle_check_pool_size: int = Field(default=2, ge=1, le=20)
    # albs-node polls every 5-10 s on a kept-alive connection: uvicorn's default of 5 s
    # closed it between polls (a new TCP connection per poll, and a race when the close
    # and the next request cross).
    keep_alive_seconds: int = Field(default=75, ge=1)

    @field_validator("jwt_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr) -> SecretStr:
        return require_strong_secret(value, "ALBS_JWT_SECRET")
