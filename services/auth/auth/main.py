"""The auth service: GitHub login, administrator rights, token revocation (it owns `users`)."""

import asyncio
import logging

from faststream import FastStream

from auth.github import GithubClient
from auth.handlers.accounts import account_handlers
from auth.handlers.login import login_handlers
from auth.settings import AuthSettings
from shared.logs import setup_logging
from shared.messaging.runtime import build_app, create_runtime
from shared.settings import load_settings

log = logging.getLogger("auth")


def github_client(settings: AuthSettings) -> GithubClient | None:
    if settings.github_client_id is None or settings.github_client_secret is None:
        log.warning("GitHub login is off: ALBS_GITHUB_CLIENT_ID/SECRET are not set")
        return None
    return GithubClient(
        client_id=settings.github_client_id,
        client_secret=settings.github_client_secret.get_secret_value(),
        web_url=settings.github_web_url,
        api_url=settings.github_api_url,
        timeout=settings.github_timeout_seconds,
    )


def create_app(settings: AuthSettings | None = None) -> FastStream:
    settings = settings or load_settings(AuthSettings)
    runtime = create_runtime("auth", settings, pool_size=5)
    github = github_client(settings)
    if github is not None:
        runtime.on_stop.append(github.aclose)
    routers = [
        login_handlers(runtime.topology, runtime.sessions, settings, github),
        account_handlers(runtime.topology, runtime.sessions),
    ]
    return build_app(runtime, routers)


def main() -> None:
    settings = load_settings(AuthSettings)
    setup_logging(settings.log_level, settings.log_format)
    asyncio.run(create_app(settings).run())
