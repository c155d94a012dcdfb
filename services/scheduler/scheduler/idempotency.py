"""Create a build at most once per idempotency key (POST /builds/ `Idempotency-Key`).

The key row is inserted first, in the transaction that plans the build: a concurrent
request with the same key waits on the row's unique index until the first commits, then
finds its build. A key is honoured for `KEY_LIFETIME`; an older one is taken over by the
next request. Keys belong to a user (their actor), so clients never see each other's builds.
"""

import hashlib
import json
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.planning import create_build
from shared.contracts.builds import BuildCreate, BuildOut
from shared.contracts.messages import Actor
from shared.db.models import BuildIdempotencyKey, User, UserKind
from shared.db.queries.builds import get_build
from shared.errors import Conflict, Forbidden, NotFound

KEY_LIFETIME = timedelta(hours=24)
# The create-build RPC of an internal service (the gitea bridge) carries this user id and
# its account name; the account is looked up here.
SERVICE_USER_ID = 0


def body_hash(request: BuildCreate) -> str:
    """Equal for equal requests, whatever the key order of the JSON they came in."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def create_build_once(
    session: AsyncSession, actor: Actor, request: BuildCreate, key: str | None
) -> BuildOut:
    actor = await resolve_service_actor(session, actor)
    if key is None:
        return await create_build(session, actor, request)
    digest = body_hash(request)
    if not await _take_key(session, actor.user_id, key, digest):
        return await _first_build(session, actor.user_id, key, digest)
    build = await create_build(session, actor, request)
    await session.execute(
        update(BuildIdempotencyKey)
        .where(BuildIdempotencyKey.user_id == actor.user_id, BuildIdempotencyKey.key == key)
        .values(build_id=build.id)
    )
    return build


async def resolve_service_actor(session: AsyncSession, actor: Actor) -> Actor:
    if actor.kind != UserKind.SERVICE or actor.user_id != SERVICE_USER_ID:
        return actor
    user_id = await session.scalar(
        select(User.id).where(User.username == actor.name, User.kind == UserKind.SERVICE)
    )
    if user_id is None:
        raise Forbidden(
            f"No service account {actor.name!r}; create it with "
            f"`albs token create --service {actor.name}`."
        )
    return actor.model_copy(update={"user_id": user_id})


async def _take_key(session: AsyncSession, user_id: int, key: str, digest: str) -> bool:
    """True when this request owns the key now (new, or the old one had expired)."""
    inserted = await session.execute(
        insert(BuildIdempotencyKey)
        .values(user_id=user_id, key=key, body_hash=digest)
        .on_conflict_do_nothing()
        .returning(BuildIdempotencyKey.key)
    )
    if inserted.first() is not None:
        return True
    expired = await session.execute(
        update(BuildIdempotencyKey)
        .where(
            BuildIdempotencyKey.user_id == user_id,
            BuildIdempotencyKey.key == key,
            BuildIdempotencyKey.created_at < func.now() - KEY_LIFETIME,
        )
        .values(body_hash=digest, build_id=None, created_at=func.now())
        .returning(BuildIdempotencyKey.key)
    )
    return expired.first() is not None


async def _first_build(session: AsyncSession, user_id: int, key: str, digest: str) -> BuildOut:
    row = await session.scalar(
        select(BuildIdempotencyKey).where(
            BuildIdempotencyKey.user_id == user_id, BuildIdempotencyKey.key == key
        )
    )
    if row is None or row.build_id is None:
        # Its build was deleted meanwhile (the key row goes with it): nothing to return.
        raise NotFound("The build created with this Idempotency-Key was deleted.")
    if row.body_hash != digest:
        raise Conflict("This Idempotency-Key was already used with a different request body.")
    build = await get_build(session, row.build_id)
    if build is None:
        raise NotFound("The build created with this Idempotency-Key was deleted.")
    return build


async def prune_keys(session: AsyncSession) -> int:
    result = await session.execute(
        delete(BuildIdempotencyKey).where(
            BuildIdempotencyKey.created_at < func.now() - KEY_LIFETIME
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
