"""The gateway's side of a reply: successful results pass through as the JSON they are."""

import json

from api_gateway.rpc_client import decode_reply
from shared.contracts.messages import RpcReply
from shared.messaging.rpc_server import reply_json


async def test_a_stored_body_passes_through_byte_for_byte() -> None:
    body = '{"id": 7, "ref": {"url": "https://x/y.git", "git_ref": "c8"}, "note": "a,\\"error\\":null}"}'

    async def stored() -> str:
        return body

    envelope = await reply_json(stored())
    assert isinstance(envelope, bytes)
    assert decode_reply(envelope) == body.encode()


async def test_nothing_to_hand_out_is_null() -> None:
    async def nothing() -> None:
        return None

    envelope = await reply_json(nothing())
    assert isinstance(envelope, bytes)
    assert decode_reply(envelope) == b"null"


def test_pydantic_replies_pass_through_and_errors_are_parsed() -> None:
    ok = RpcReply.success({"a": [1, 2]}).model_dump_json().encode()
    assert json.loads(decode_reply(ok)) == {"a": [1, 2]}  # type: ignore[arg-type]
    failed = decode_reply(RpcReply.failure(409, "taken").model_dump_json().encode())
    assert isinstance(failed, RpcReply)
    assert failed.error is not None
    assert (failed.error.status, failed.error.detail) == (409, "taken")


def test_a_malformed_reply_is_a_502() -> None:
    for body in (b"", b"{", b'{"ok": "maybe"}'):
        reply = decode_reply(body)
        assert isinstance(reply, RpcReply)
        assert reply.error is not None
        assert reply.error.status == 502
