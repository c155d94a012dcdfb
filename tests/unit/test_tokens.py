import time

import jwt
import pytest

from shared.tokens import InvalidToken, decode_token, issue_token

SECRET = "s" * 64


def test_issued_token_carries_standard_and_reference_claims() -> None:
    token = issue_token(SECRET, 7, lifetime_seconds=60, token_version=3, kind="node", now=1000)
    payload = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert payload["sub"] == "7"
    assert payload["identity"] == {"user_id": 7}
    assert payload["exp"] == 1060
    assert payload["expires"] == 1060.0
    assert payload["iat"] == 1000
    claims = decode_token(SECRET, token, now=1001)
    assert (claims.user_id, claims.token_version, claims.kind) == (7, 3, "node")


def test_reference_format_token_is_accepted() -> None:
    token = jwt.encode(
        {"identity": {"user_id": 5}, "expires": time.time() + 60}, SECRET, algorithm="HS256"
    )
    claims = decode_token(SECRET, token)
    assert claims.user_id == 5
    assert claims.token_version is None


def test_standard_only_token_is_accepted() -> None:
    token = jwt.encode({"sub": "9", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert decode_token(SECRET, token).user_id == 9


@pytest.mark.parametrize(
    "payload",
    [
        {"identity": {"user_id": 1}, "expires": 10.0},  # expired (reference claim)
        {"sub": "1", "exp": 10},  # expired (standard claim)
        {"identity": {"user_id": 1}},  # never expires: refused
        {"expires": 9e12},  # no identity
        {"sub": "abc", "exp": 9e12},  # identity not a number
    ],
)
def test_unusable_tokens_are_rejected(payload: dict[str, object]) -> None:
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match="Invalid or expired token"):
        decode_token(SECRET, token, now=100)


def test_wrong_signature_and_garbage_are_rejected() -> None:
    other = issue_token("o" * 40, 1, lifetime_seconds=60)
    for token in (other, "not-a-jwt", ""):
        with pytest.raises(InvalidToken):
            decode_token(SECRET, token)


def test_other_algorithms_are_rejected() -> None:
    token = jwt.encode({"sub": "1", "exp": 9e12}, SECRET, algorithm="HS512")
    with pytest.raises(InvalidToken):
        decode_token(SECRET, token)


def test_a_checked_token_still_expires_and_other_secrets_still_check_it() -> None:
    token = issue_token(SECRET, 4, lifetime_seconds=60, now=1000)
    assert decode_token(SECRET, token, now=1001).user_id == 4
    assert decode_token(SECRET, token, now=1002).user_id == 4  # from the cache
    with pytest.raises(InvalidToken):
        decode_token(SECRET, token, now=1060)
    with pytest.raises(InvalidToken):
        decode_token("o" * 64, token, now=1001)  # the signature is checked per secret
