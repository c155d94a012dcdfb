from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ENV_PREFIX, CommonSettings


class SchedulerSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    # How long a started task stays with its node without a ping (albs-node pings every 60 s).
    lease_seconds: int = 300
    reaper_interval_seconds: float = 15.0
    # The Sign Node sends no heartbeat: a sign task stays with its node this long (its
    # get_sign_task polls renew it), then goes back to the queue, at most this many times.
    sign_lease_seconds: int = 1800
    sign_max_attempts: int = 3
    # Connections (asyncpg, autocommit) for get_task claims only: one round trip each.
    claim_pool_size: int = 2
    # uvloop or the standard asyncio loop (to compare them: bench/get_task.py).
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    # ALTS, the test system (docs/decisions/0015-test-tasks.md). Unset: test tasks are
    # created but not sent.
    alts_url: str | None = None
    alts_token: SecretStr = SecretStr("")
    alts_timeout_seconds: float = Field(default=10.0, gt=0)
    # Tests sent and not yet answered (or being sent), over all replicas.
    alts_max_in_flight: int = Field(default=20, ge=1, le=10_000)
    alts_dispatch_interval_seconds: float = Field(default=5.0, gt=0)
    alts_retry_base_seconds: float = Field(default=5.0, gt=0)
    alts_retry_max_seconds: float = Field(default=300.0, gt=0)
    # A test sent to ALTS without a result after this long fails with that reason.
    test_result_timeout_seconds: float = Field(default=10_800.0, gt=0)
    test_timeout_interval_seconds: float = Field(default=60.0, gt=0)
