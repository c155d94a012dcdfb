"""Read-side queries about users."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.users import UserAccount, UserOut
from shared.db.models import User, UserKind


def _out(user: User) -> UserOut:
    return UserOut(id=user.id, username=user.username, email=user.email)


async def find_user(
    session: AsyncSession,
    *,
    user_id: int | None = None,
    username: str | None = None,
    email: str | None = None,
) -> UserOut | None:
    """The user matching the first criterion given, in the order id, username, email."""
    query = select(User)
    if user_id is not None:
        query = query.where(User.id == user_id)
    elif username is not None:
        query = query.where(User.username == username)
    elif email is not None:
        # E-mail addresses are not unique; the oldest account wins, always the same one.
        query = query.where(func.lower(User.email) == email.lower()).order_by(User.id).limit(1)
    else:
        raise ValueError("give a criterion")
    user = await session.scalar(query)
    return _out(user) if user is not None else None


async def get_account(session: AsyncSession, user_id: int) -> UserAccount | None:
    user = await session.get(User, user_id)
    if user is None:
        return None
    return UserAccount(
        id=user.id, username=user.username, email=user.email, kind=user.kind, is_admin=user.is_admin
    )


async def list_people(session: AsyncSession, *, limit: int, offset: int) -> list[UserOut]:
    """People only: build nodes and services are not someone to pick in a list."""
    rows = await session.scalars(
        select(User).where(User.kind == UserKind.USER).order_by(User.id).limit(limit).offset(offset)
    )
    return [_out(user) for user in rows]
