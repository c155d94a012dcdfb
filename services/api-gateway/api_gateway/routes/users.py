"""/api/v1/users: GitHub login, user look-ups, administrator rights, token revocation."""

from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.exceptions import RequestValidationError

from api_gateway.deps import RpcDep, SessionDep, UsersDep
from api_gateway.params import SearchText, UserId
from api_gateway.policy import Admin, People, Public, SelfOrAdmin
from api_gateway.responses import BODY, COMMON, errors
from shared.contracts.bounds import INT32_MAX
from shared.contracts.users import (
    LOGIN_GITHUB,
    REVOKE_TOKENS,
    SET_ADMIN,
    AdminFlag,
    GithubLogin,
    LoginReply,
    RevokeTokens,
    SetAdmin,
    UserAccount,
    UserOut,
)
from shared.db.queries import users as queries
from shared.errors import NotFound

router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=errors(*COMMON))


@router.post("/login/github", response_model=LoginReply, responses=errors(409, 502, *BODY))
async def login_github(body: GithubLogin, _: Public, rpc: RpcDep) -> LoginReply | None:
    return await rpc.call(LOGIN_GITHUB, body)


@router.get("/", response_model=UserOut, responses=errors(404))
async def find_user(
    _: People,
    session: SessionDep,
    user_id: Annotated[int | None, Query(alias="id", ge=1, le=INT32_MAX)] = None,
    username: SearchText | None = None,
    name: Annotated[
        SearchText | None, Query(description="The reference's name for `username`.")
    ] = None,
    email: SearchText | None = None,
) -> UserOut:
    username = username if username is not None else name
    if user_id is None and username is None and email is None:
        # Shaped as every other 422, as the OpenAPI document promises.
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "id"),
                    "msg": "Give one of the query parameters id, username (or name), email.",
                    "type": "missing",
                }
            ]
        )
    user = await queries.find_user(session, user_id=user_id, username=username, email=email)
    if user is None:
        wanted = user_id if user_id is not None else username if username is not None else email
        raise NotFound(f'User "{wanted}" is not found')
    return user


@router.get("/me", response_model=UserAccount, responses=errors(404))
async def me(actor: People, session: SessionDep) -> UserAccount:
    account = await queries.get_account(session, actor.user_id)
    if account is None:  # deleted between the token check and this read
        raise NotFound(f'User "{actor.user_id}" is not found')
    return account


@router.get("/all_users", response_model=list[UserOut])
async def all_users(
    _: People,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=INT32_MAX, description="1-based")] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 100,
) -> list[UserOut]:
    """People, oldest first; a plain list as the Dec-2021 frontend reads it."""
    return await queries.list_people(session, limit=page_size, offset=(page - 1) * page_size)


@router.put("/{user_id}/admin", response_model=UserAccount, responses=errors(404, *BODY))
async def set_admin(
    user_id: UserId,
    body: Annotated[AdminFlag, Body()],
    actor: Admin,
    rpc: RpcDep,
    users: UsersDep,
) -> UserAccount | None:
    command = SetAdmin(actor=actor, user_id=user_id, is_admin=body.is_admin)
    account = await rpc.call(SET_ADMIN, command)
    users.evict(user_id)  # this gateway at once; the others on PostgreSQL's notice
    return account


@router.post("/{user_id}/revoke-tokens", response_model=UserAccount, responses=errors(404))
async def revoke_tokens(
    user_id: UserId, actor: SelfOrAdmin, rpc: RpcDep, users: UsersDep
) -> UserAccount | None:
    account = await rpc.call(REVOKE_TOKENS, RevokeTokens(actor=actor, user_id=user_id))
    users.evict(user_id)
    return account
