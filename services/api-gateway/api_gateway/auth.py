"""Who is calling: the bearer token, verified locally, and the user it names."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from api_gateway.deps import SessionDep
from shared.contracts.messages import Actor
from shared.db.models import User
from shared.tokens import InvalidToken, decode_token

# auto_error is off: the reference answers 403 (not 401) and the frontend relies on it.
bearer = HTTPBearer(auto_error=False, description="A JWT from login or `albs token create`")


def forbidden(detail: str) -> HTTPException:
    return HTTPException(status_code=403, detail=detail)


async def current_actor(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    if credentials is None:
        raise forbidden("Not authenticated")
    secret = request.app.state.settings.jwt_secret.get_secret_value()
    try:
        claims = decode_token(secret, credentials.credentials)
    except InvalidToken as exc:
        raise forbidden(str(exc)) from None
    user = await _user(session, claims.user_id)
    # A token names the kind of account it was issued to; a mismatch is a forged or stale token.
    if user is None or (claims.kind is not None and claims.kind != user.kind):
        raise forbidden("Invalid or expired token.")
    # Reference-format tokens carry no version: they stop working once a user's tokens are revoked.
    if (claims.token_version or 1) != user.token_version:
        raise forbidden("This token has been revoked; log in again.")
    # A node's identity: the header when it sends one, else its own node token's name.
    node_id = request.headers.get("x-node-id") or (user.username if user.kind == "node" else None)
    return Actor(
        user_id=user.id, name=user.username, is_admin=user.is_admin, kind=user.kind, node_id=node_id
    )


async def _user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)
