"""Who is calling: the bearer token, verified locally, and the user it names (cached)."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api_gateway.user_directory import KnownUser, UserDirectory
from shared.contracts.bounds import id_in_range
from shared.contracts.messages import Actor
from shared.db.models import UserKind
from shared.errors import Invalid
from shared.tokens import InvalidToken, decode_token

# auto_error is off: the reference answers 403 (not 401) and the frontend relies on it.
bearer = HTTPBearer(auto_error=False, description="A JWT from login or `albs token create`")

NODE_HEADER = "x-node-id"
NODE_ID_MAX = 100


def forbidden(detail: str) -> HTTPException:
    return HTTPException(status_code=403, detail=detail)


async def current_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    if credentials is None:
        raise forbidden("Not authenticated")
    state = request.app.state
    return await actor_for(
        state.settings.jwt_secret.get_secret_value(),
        state.users,
        credentials.credentials,
        request.headers.get(NODE_HEADER),
    )


async def actor_for(
    secret: str, directory: UserDirectory, token: str, node_header: str | None
) -> Actor:
    """The caller a bearer token names; raises what the route answers (403, or 422 for a
    malformed `X-Node-Id`). Shared by the dependency and the node fast path."""
    try:
        claims = decode_token(secret, token)
    except InvalidToken as exc:
        raise forbidden(str(exc)) from None
    if not id_in_range(claims.user_id):
        raise forbidden("Invalid or expired token.")
    user = await directory.get(claims.user_id)
    # A token names the kind of account it was issued to; a mismatch is a forged or stale token.
    if user is None or (claims.kind is not None and claims.kind != user.kind):
        raise forbidden("Invalid or expired token.")
    # Reference-format tokens carry no version: they stop working once a user's tokens are revoked.
    if (claims.token_version or 1) != user.token_version:
        raise forbidden("This token has been revoked; log in again.")
    return Actor(
        user_id=user.id,
        name=user.username,
        is_admin=user.is_admin,
        kind=user.kind,
        node_id=node_identity(user, node_header),
    )


def node_identity(user: KnownUser, header: str | None) -> str | None:
    """A node is who its token says. `X-Node-Id` only names a part of that node (one of
    several builder processes sharing a token): `node/builder-2`, never another node.
    Administrators, who may call node endpoints to debug, name the node they act as."""
    if header is not None and (not header or len(header) > NODE_ID_MAX or not header.isprintable()):
        raise Invalid(f"X-Node-Id must be 1 to {NODE_ID_MAX} printable characters.")
    if user.kind in (UserKind.NODE, UserKind.SIGN_NODE):
        if header is None or header == user.username or header.startswith(f"{user.username}/"):
            return header or user.username
        return f"{user.username}/{header}"
    if user.kind == UserKind.USER and user.is_admin:
        return header or user.username
    return None
