"""Settings every service shares; each service extends them with its own class."""

import sys
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.topology import MAX_DELIVERIES
from shared.db.session import DbLimits

ENV_PREFIX = "ALBS_"


class CommonSettings(BaseSettings):
    """Where the shared servers are. Defaults point at a developer machine's local servers."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
    )

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/albs"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Every exchange and queue name starts with this, so two stacks (or two test
    # runs) can share one RabbitMQ without seeing each other's messages.
    amqp_prefix: str = "albs"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "albs"
    log_level: str = "INFO"
    # `json`: one JSON object per line (for log collectors); `text` for people.
    log_format: Literal["text", "json"] = "text"
    # The port of this process's /metrics and /healthz (FastStream services and the gitea
    # bridge; the gateway serves both on its own port). 0: not served.
    ops_port: int = Field(default=0, ge=0, le=65535)
    ops_host: str = "127.0.0.1"
    # PostgreSQL connections of one process: `db_pool_size + db_max_overflow` at most
    # (docs/decisions/0011-request-path.md has the budget of a whole deployment).
    db_pool_size: int = Field(default=5, ge=1, le=50)
    db_max_overflow: int = Field(default=2, ge=0, le=50)
    # A service's handlers queue for a connection (backpressure); the gateway answers 503
    # sooner (its own default is 5 s).
    db_pool_timeout_seconds: float = Field(default=30.0, gt=0)
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    db_statement_timeout_seconds: float = Field(default=30.0, gt=0)
    db_lock_timeout_seconds: float = Field(default=10.0, gt=0)

    def db_limits(self) -> DbLimits:
        return DbLimits(
            pool_timeout=self.db_pool_timeout_seconds,
            connect_timeout=self.db_connect_timeout_seconds,
            statement_timeout=self.db_statement_timeout_seconds,
            lock_timeout=self.db_lock_timeout_seconds,
        )

    # Messaging (docs/decisions/0010-messages-you-can-trust.md).
    publish_timeout_seconds: float = Field(default=5.0, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_retention_seconds: float = Field(default=86_400.0, gt=0)
    inbox_retention_seconds: float = Field(default=7 * 86_400.0, gt=0)
    retention_interval_seconds: float = Field(default=600.0, gt=0)
    retention_batch_size: int = Field(default=5_000, ge=1)
    # An event whose handler failed this many times goes to the dead-letter queue with its
    # error; below the queues' x-delivery-limit, which stays as a backstop.
    max_event_failures: int = Field(default=5, ge=1, le=MAX_DELIVERIES - 1)


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Build settings or stop the process with a message naming each bad variable."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [f"{cls.__name__}: cannot start, configuration is invalid:"]
        for err in exc.errors():
            name = f"{prefix}{'_'.join(str(p) for p in err['loc'])}".upper()
            if err["type"] == "missing":
                lines.append(f"  {name} is required but not set")
            else:
                lines.append(f"  {name}: {err['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None


MIN_SECRET_LENGTH = 32
PLACEHOLDERS = {"changeme", "secret", "change-me", "jwt-secret"}


def require_strong_secret(value: SecretStr, name: str) -> SecretStr:
    raw = value.get_secret_value()
    if raw.lower() in PLACEHOLDERS or len(raw) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"{name} must be a random string of at least {MIN_SECRET_LENGTH} characters "
            "(e.g. `openssl rand -hex 32`)"
        )
    return value
