"""The responder side of RPC, in memory with TestRabbitBroker."""

from faststream import ContextRepo
from faststream.rabbit import RabbitBroker, TestRabbitBroker
from faststream.rabbit.response import RabbitPublishCommand
from faststream.response.publish_type import PublishType

from shared.contracts.messages import RpcReply
from shared.contracts.platforms import PlatformSummary
from shared.errors import Conflict, NotFound
from shared.messaging.rpc_server import RepliesNotMandatory, reply


async def test_business_errors_become_error_replies_not_silence() -> None:
    broker = RabbitBroker()

    @broker.subscriber("lookup")
    async def lookup(name: str) -> RpcReply:
        async def find() -> PlatformSummary:
            if name == "missing":
                raise NotFound("Platform 'missing' is not found.")
            if name == "taken":
                raise Conflict("Platform 'taken' already exists.")
            if name == "bug":
                raise RuntimeError("boom")
            return PlatformSummary(id=1, name=name, arch_list=["x86_64"])

        return await reply(find())

    async with TestRabbitBroker(broker) as br:
        found = await (await br.request("p1", "lookup")).decode()
        missing = await (await br.request("missing", "lookup")).decode()
        taken = await (await br.request("taken", "lookup")).decode()
        bug = await (await br.request("bug", "lookup")).decode()

    assert RpcReply.model_validate(found).result == {"id": 1, "name": "p1", "arch_list": ["x86_64"]}
    assert RpcReply.model_validate(missing).error.model_dump() == {  # type: ignore[union-attr]
        "status": 404,
        "detail": "Platform 'missing' is not found.",
    }
    assert RpcReply.model_validate(taken).error.status == 409  # type: ignore[union-attr]
    bug_reply = RpcReply.model_validate(bug)
    assert bug_reply.error is not None
    assert bug_reply.error.status == 500
    assert "boom" not in bug_reply.error.detail  # internals stay in the log


async def test_replies_are_published_without_mandatory_and_other_messages_keep_it() -> None:
    seen: list[bool] = []

    async def publish(cmd: RabbitPublishCommand) -> None:
        seen.append(cmd.publish_options["mandatory"])

    for kind in (PublishType.REPLY, PublishType.PUBLISH):
        cmd = RabbitPublishCommand(b"{}", _publish_type=kind, routing_key="q")
        await RepliesNotMandatory(None, context=ContextRepo()).publish_scope(publish, cmd)
    assert seen == [False, True]
