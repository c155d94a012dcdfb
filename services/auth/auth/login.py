"""Login through GitHub: ask GitHub who the code belongs to, then record the person."""

import asyncio
import logging

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth.github import GithubClient, GithubIdentity
from auth.settings import AuthSettings
from auth.users import token_for
from shared.contracts.users import LoginReply
from shared.db.models import User, UserKind
from shared.db.session import SessionFactory, in_transaction
from shared.errors import Conflict, Forbidden, Unavailable
from shared.retry import retrying

log = logging.getLogger(__name__)


async def login_with_github(
    github: GithubClient | None, sessions: SessionFactory, settings: AuthSettings, code: str
) -> LoginReply:
    if github is None:
        raise Unavailable("GitHub login is not configured on this server.")
    deadline = settings.login_deadline_seconds
    try:
        async with asyncio.timeout(deadline):
            # GitHub is asked before any transaction opens: no row lock waits on the network.
            identity = await github.identify(code, settings.github_org)
            user = await record_login(sessions, identity)
    except TimeoutError:
        raise Unavailable(f"The login did not finish within {deadline:g} s; try again.") from None
    log.info("login: %s (GitHub id %d) as user %d", user.username, identity.github_id, user.id)
    return LoginReply(
        id=user.id, username=user.username, email=user.email, jwt_token=token_for(user, settings)
    )


async def record_login(sessions: SessionFactory, identity: GithubIdentity) -> User:
    # Two first logins of one person may race to insert the row; the loser, run again,
    # finds it.
    return await retrying(
        lambda: in_transaction(sessions, upsert_github_user, identity),
        what=f"login: recording {identity.login}",
        retry_on=lambda error: isinstance(error, IntegrityError),
        attempts=2,
        first_wait=0.01,
    )


async def upsert_github_user(session: AsyncSession, identity: GithubIdentity) -> User:
    """The user with this GitHub id, else with this name (which then gets the id), else a new one."""
    user = await _locked(session, User.github_id == identity.github_id)
    if user is not None:
        await _follow_rename(session, user, identity.login)
    else:
        user = await _locked(session, User.username == identity.login)
        if user is None:
            user = User(username=identity.login, kind=UserKind.USER, github_id=identity.github_id)
            session.add(user)
        else:
            _claim(user, identity)
    user.email = identity.email
    await session.flush()
    return user


async def _locked(session: AsyncSession, condition: ColumnElement[bool]) -> User | None:
    return await session.scalar(select(User).where(condition).with_for_update())


def _claim(user: User, identity: GithubIdentity) -> None:
    """A user created by name (e.g. with the CLI) becomes this GitHub account's user."""
    if user.kind != UserKind.USER:
        raise Forbidden(
            f'"{identity.login}" is the name of a {user.kind} account; it cannot log in.'
        )
    # Equal ids: a concurrent first login of the same person committed the row meanwhile.
    if user.github_id not in (None, identity.github_id):
        raise Conflict(
            f'The user name "{identity.login}" belongs to another GitHub account; '
            "ask an administrator to rename or remove the old user."
        )
    user.github_id = identity.github_id


async def _follow_rename(session: AsyncSession, user: User, login: str) -> None:
    if user.username == login:
        return
    taken = await session.scalar(select(User.id).where(User.username == login))
    if taken is None:
        log.info("login: user %d renamed on GitHub from %s to %s", user.id, user.username, login)
        user.username = login
    else:
        log.warning("login: user %d is now %s on GitHub, a name already taken", user.id, login)
