"""Users and login (REFERENCE §3 rows 26-27, §5.10)."""

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from shared.contracts.base import WireModel
from shared.contracts.bounds import Flag, clean_text
from shared.contracts.messages import Actor, RpcSpec


class GithubLogin(WireModel):
    """The OAuth code GitHub gave the frontend; it is good for one exchange."""

    code: Annotated[
        str, StringConstraints(min_length=1, max_length=512), AfterValidator(clean_text)
    ]


class LoginReply(WireModel):
    id: int
    username: str
    email: str
    jwt_token: str


class UserOut(WireModel):
    id: int
    username: str
    email: str


class UserAccount(UserOut):
    """A user with what the policy looks at (additive to the reference's `{id, username, email}`)."""

    kind: str
    is_admin: bool


class AdminFlag(WireModel):
    is_admin: Flag


class SetAdmin(WireModel):
    actor: Actor
    user_id: int
    is_admin: bool


class RevokeTokens(WireModel):
    actor: Actor
    user_id: int


LOGIN_GITHUB = RpcSpec("auth.login_github", GithubLogin, LoginReply)
SET_ADMIN = RpcSpec("auth.set_admin", SetAdmin, UserAccount)
REVOKE_TOKENS = RpcSpec("auth.revoke_tokens", RevokeTokens, UserAccount)
