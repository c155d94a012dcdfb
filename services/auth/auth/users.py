"""Users, their rights and the tokens issued to them."""

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.settings import AuthSettings
from shared.contracts.messages import Actor
from shared.contracts.users import UserAccount
from shared.db.models import User, UserKind
from shared.errors import Forbidden, Invalid, NotFound
from shared.tokens import issue_token

log = logging.getLogger(__name__)


async def ensure_user(
    session: AsyncSession, username: str, *, email: str, kind: UserKind, admin: bool
) -> User:
    """The user with this name, created if new; `admin` grants (never revokes) admin."""
    if admin and kind != UserKind.USER:
        raise ValueError("only people can be administrators")
    user = await session.scalar(select(User).where(User.username == username).with_for_update())
    if user is None:
        user = User(username=username, email=email, kind=kind, is_admin=admin)
        session.add(user)
    elif user.kind != kind:
        raise ValueError(f"'{username}' exists as a {user.kind}, not a {kind}")
    elif admin:
        user.is_admin = True
    await session.flush()
    return user


def token_for(user: User, settings: AuthSettings) -> str:
    lifetime = (
        settings.user_token_lifetime_seconds
        if user.kind == UserKind.USER
        else settings.machine_token_lifetime_seconds
    )
    return issue_token(
        settings.jwt_secret.get_secret_value(),
        user.id,
        lifetime_seconds=lifetime,
        token_version=user.token_version,
        kind=user.kind,
    )


def account(user: User) -> UserAccount:
    return UserAccount(
        id=user.id, username=user.username, email=user.email, kind=user.kind, is_admin=user.is_admin
    )


async def set_admin(
    session: AsyncSession, actor: Actor, user_id: int, is_admin: bool
) -> UserAccount:
    """Grant or remove administrator rights; takes effect on the user's next request."""
    if not _is_admin(actor):
        raise Forbidden("This action needs an administrator.")
    user = await _locked_user(session, user_id)
    return account(await _apply_admin(session, user, is_admin, by=actor.name))


async def set_admin_by_name(session: AsyncSession, username: str, is_admin: bool) -> User:
    """The CLI's way to grant or remove admin rights, by user name."""
    user = await session.scalar(select(User).where(User.username == username).with_for_update())
    if user is None:
        raise NotFound(f'User "{username}" is not found')
    return await _apply_admin(session, user, is_admin, by="the command line")


async def _apply_admin(session: AsyncSession, user: User, is_admin: bool, *, by: str) -> User:
    if is_admin and user.kind != UserKind.USER:
        raise Invalid(f'"{user.username}" is a {user.kind} account; only people can be admins.')
    user.is_admin = is_admin
    await session.flush()
    log.info("admin: %s set is_admin=%s for user %d", by, is_admin, user.id)
    return user


async def revoke_tokens(session: AsyncSession, actor: Actor, user_id: int) -> UserAccount:
    """Invalidate every token issued to the user so far (an admin's, or one's own)."""
    if not (_is_admin(actor) or (actor.kind == UserKind.USER and actor.user_id == user_id)):
        raise Forbidden("Only an administrator or the user themself may revoke these tokens.")
    user = await _locked_user(session, user_id)
    return account(await _bump_version(session, user, by=actor.name))


async def revoke_tokens_by_name(session: AsyncSession, username: str, kind: UserKind) -> User:
    """The CLI's revocation: the operator names the user."""
    user = await session.scalar(select(User).where(User.username == username).with_for_update())
    if user is None or user.kind != kind:
        raise NotFound(f'There is no {kind} named "{username}"')
    return await _bump_version(session, user, by="the command line")


async def _bump_version(session: AsyncSession, user: User, *, by: str) -> User:
    user.token_version += 1
    await session.flush()
    log.info("tokens: %s revoked every token of user %d", by, user.id)
    return user


async def _locked_user(session: AsyncSession, user_id: int) -> User:
    user = await session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise NotFound(f'User "{user_id}" is not found')
    return user


def _is_admin(actor: Actor) -> bool:
    return actor.kind == UserKind.USER and actor.is_admin
