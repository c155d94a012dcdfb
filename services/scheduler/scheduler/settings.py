from typing import Literal

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
