"""JWTs: issued by the auth service and the CLI, verified by the gateway.

A token carries the standard claims (`sub`, `iat`, `exp`) and the reference's
`identity.user_id` and `expires`, so clients of the original server keep working.
Tokens minted by the original server (only `identity` and `expires`) are accepted too.
"""

import functools
import time
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    expires_at: float
    # None for reference-format tokens, which predate revocation.
    token_version: int | None
    kind: str | None


def issue_token(
    secret: str,
    user_id: int,
    *,
    lifetime_seconds: int,
    token_version: int = 1,
    kind: str = "user",
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    expires = issued + lifetime_seconds
    payload = {
        "sub": str(user_id),
        "iat": issued,
        "exp": expires,
        "identity": {"user_id": user_id},
        "expires": float(expires),
        "ver": token_version,
        "kind": kind,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def decode_token(secret: str, token: str, *, now: float | None = None) -> TokenClaims:
    claims = _verified(secret, token)
    if claims.expires_at <= (now if now is not None else time.time()):
        raise InvalidToken("Invalid or expired token.")
    return claims


# Checking a signature is pure, cost an eighth of the gateway's CPU per get_task (PyJWT
# builds a JSON decoder per call to refuse JWK-shaped secrets), and nodes send the same
# token every few seconds. Only valid signatures are kept (an exception is never
# cached); expiry is checked on every call, revocation by the caller against the user.
@functools.lru_cache(maxsize=4096)
def _verified(secret: str, token: str) -> TokenClaims:
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": [], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken("Invalid or expired token.") from exc
    user_id = _user_id(payload)
    expires_at = _expiry(payload)
    version = payload.get("ver")
    kind = payload.get("kind")
    return TokenClaims(
        user_id=user_id,
        expires_at=expires_at,
        token_version=version if isinstance(version, int) else None,
        kind=kind if isinstance(kind, str) else None,
    )


def _user_id(payload: dict[str, Any]) -> int:
    identity = payload.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("user_id"), int):
        return int(identity["user_id"])
    sub = payload.get("sub")
    if isinstance(sub, str) and sub.isdigit():
        return int(sub)
    raise InvalidToken("Invalid or expired token.")


def _expiry(payload: dict[str, Any]) -> float:
    for claim in ("exp", "expires"):
        value = payload.get(claim)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    # A token that never expires is not accepted.
    raise InvalidToken("Invalid or expired token.")
