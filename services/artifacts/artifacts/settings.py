from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ENV_PREFIX, CommonSettings


class ArtifactsSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    # ALBS_DB_POOL_SIZE (CommonSettings): a handler holds at most one connection at a time,
    # so even 1 cannot deadlock; the default 5 lets a backlog run in parallel.
    pulp_url: str = "http://127.0.0.1:24817"
    pulp_user: str = "admin"
    pulp_password: SecretStr = SecretStr("admin")
    # Every HTTP call to Pulp (connect, read, write) gives up after this long.
    pulp_timeout_seconds: float = Field(default=30.0, gt=0)
    # A step that met a connection error or a 5xx is tried again after backoff * 2**n
    # seconds plus jitter (at most pulp_retry_max_delay_seconds), up to this many times and
    # for at most pulp_retry_deadline_seconds: a Pulp restart or a short outage is waited
    # out, a Pulp that stays away fails the step (the report then carries the error).
    pulp_retries: int = Field(default=50, ge=0)
    pulp_retry_backoff_seconds: float = Field(default=0.5, ge=0)
    pulp_retry_max_delay_seconds: float = Field(default=10.0, ge=0)
    pulp_retry_deadline_seconds: float = Field(default=300.0, gt=0)
    # Pulp tasks are polled (all in one request) at a growing interval up to this, and
    # abandoned after the timeout.
    pulp_task_poll_seconds: float = Field(default=0.3, gt=0)
    pulp_task_timeout_seconds: float = Field(default=600.0, gt=0)
    # HTTP requests to Pulp in flight per process (Pulp's API runs two gunicorn workers); a
    # step waiting for its Pulp task holds none, and one watcher polls all the tasks waited for.
    pulp_concurrency: int = Field(default=4, ge=1)
    # The warm pool (docs/decisions/0009, third pass): ready empty repositories kept per kind,
    # so a build's repositories and a task's log repository need no Pulp worker task. 0
    # disables a kind (then it is made on demand, as before). A two-arch build takes 4 `rpm`
    # and 1 `rpm_src`, each reported task 1 `logs`.
    pulp_pool_rpm: int = Field(default=8, ge=0)
    pulp_pool_rpm_src: int = Field(default=4, ge=0)
    pulp_pool_logs: int = Field(default=8, ge=0)
    # Entries made at once by the refill (each is 1-2 Pulp tasks beside the builds' own),
    # and how often the pool is looked at when no claim wakes it.
    pulp_pool_fill_concurrency: int = Field(default=2, ge=1)
    pulp_pool_check_seconds: float = Field(default=30.0, gt=0)
