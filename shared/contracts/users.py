"""Users and login (REFERENCE §3 rows 26-27, §5.10)."""

from pydantic import Field

from shared.contracts.base import WireModel


class GithubLogin(WireModel):
    code: str = Field(min_length=1)


class LoginReply(WireModel):
    id: int
    username: str
    email: str
    jwt_token: str


class UserOut(WireModel):
    id: int
    username: str
    email: str
