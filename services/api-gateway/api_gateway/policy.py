"""Who may call what. Every route names exactly one of these rules as a dependency.

- People: a person's token (any user, admin or not).
- Admin: a person with administrator rights.
- BuildNode: a build node's token, or an administrator (to debug a node by hand).
- SignNode: a Sign Node's token only (`albs token create --sign-node NAME`); not even an
  administrator, since a claim hands out work under the caller's name.
- AltsService: the test system's service token (name "alts"), or an administrator.
- SelfOrAdmin: a person acting on their own account (the `user_id` path parameter),
  or an administrator.
- Public: no token at all; only GitHub login. Any Authorization header is ignored
  (the frontend sends `Bearer null` there).
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException

from api_gateway.auth import current_actor
from shared.contracts.messages import Actor
from shared.db.models import UserKind

ALTS_SERVICE_NAME = "alts"

Rule = Callable[..., Coroutine[Any, Any, Actor]]


def _denied(detail: str) -> HTTPException:
    return HTTPException(status_code=403, detail=detail)


async def people(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    if actor.kind != UserKind.USER:
        raise _denied(f"A {actor.kind} token cannot call this endpoint; it is for people.")
    return actor


async def admin(actor: Annotated[Actor, Depends(people)]) -> Actor:
    if not actor.is_admin:
        raise _denied("This action needs an administrator.")
    return actor


def may_act_as_build_node(actor: Actor) -> bool:
    return actor.kind == UserKind.NODE or (actor.kind == UserKind.USER and actor.is_admin)


async def build_node(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    if may_act_as_build_node(actor):
        return actor
    raise _denied("Only build nodes may call the build node endpoints.")


async def sign_node(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    if actor.kind == UserKind.SIGN_NODE:
        return actor
    raise _denied("Only sign nodes may call the sign node endpoints.")


async def alts_service(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    # Strictly ALTS's own token: a result decides a package's fate, so nobody else posts one.
    if actor.kind == UserKind.SERVICE and actor.name == ALTS_SERVICE_NAME:
        return actor
    raise _denied("Only the test system (ALTS's service token) may post test results.")


async def self_or_admin(user_id: int, actor: Annotated[Actor, Depends(people)]) -> Actor:
    if actor.user_id != user_id and not actor.is_admin:
        raise _denied("Only the user themself or an administrator may do this.")
    return actor


async def public() -> None:
    """Declares a route open to everyone; it reads no credentials at all."""


RULES: tuple[Rule, ...] = (people, admin, build_node, sign_node, alts_service, self_or_admin)

People = Annotated[Actor, Depends(people)]
Admin = Annotated[Actor, Depends(admin)]
BuildNode = Annotated[Actor, Depends(build_node)]
SignNode = Annotated[Actor, Depends(sign_node)]
AltsService = Annotated[Actor, Depends(alts_service)]
SelfOrAdmin = Annotated[Actor, Depends(self_or_admin)]
Public = Annotated[None, Depends(public)]
