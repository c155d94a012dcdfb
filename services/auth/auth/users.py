"""Users and the tokens issued to them."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.settings import AuthSettings
from shared.db.models import User, UserKind
from shared.tokens import issue_token


async def ensure_user(
    session: AsyncSession, username: str, *, email: str, kind: UserKind, admin: bool
) -> User:
    """The user with this name, created if new; `admin` grants (never revokes) admin."""
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
