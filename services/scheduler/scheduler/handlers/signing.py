"""Signing traffic: key and task commands from people, get_sign_task and complete from
Sign Nodes (RPC), and the artifacts service's answer once the signed packages are in place."""

from faststream.rabbit import RabbitMessage, RabbitRouter

from scheduler import sign_assignment, signing
from scheduler.settings import SchedulerSettings
from shared.contracts.messages import RpcReply
from shared.contracts.signing import (
    CANCEL_SIGN_TASK,
    COMPLETE_SIGN_TASK,
    CREATE_SIGN_KEY,
    CREATE_SIGN_TASK,
    GET_SIGN_TASK,
    UPDATE_SIGN_KEY,
    CancelSignTask,
    ClaimSignTask,
    CompleteSignTask,
    CreateSignKey,
    CreateSignTask,
    SignTaskPackagesReplaced,
    UpdateSignKey,
)
from shared.contracts.topology import Topology
from shared.db.session import SessionFactory, in_transaction
from shared.errors import Forbidden
from shared.messaging.inbox import handle_once
from shared.messaging.rpc_server import reply
from shared.messaging.subscribers import event_subscriber

CONSUMER = "scheduler"


def signing_handlers(
    topology: Topology, sessions: SessionFactory, settings: SchedulerSettings
) -> RabbitRouter:
    router = RabbitRouter()

    @router.subscriber(topology.rpc_queue(CREATE_SIGN_KEY))
    async def on_create_key(command: CreateSignKey) -> RpcReply:
        return await reply(in_transaction(sessions, signing.create_key, command.actor, command.key))

    @router.subscriber(topology.rpc_queue(UPDATE_SIGN_KEY))
    async def on_update_key(command: UpdateSignKey) -> RpcReply:
        return await reply(
            in_transaction(
                sessions, signing.update_key, command.actor, command.key_id, command.changes
            )
        )

    @router.subscriber(topology.rpc_queue(CREATE_SIGN_TASK))
    async def on_create_task(command: CreateSignTask) -> RpcReply:
        return await reply(
            in_transaction(sessions, signing.create_task, command.actor, command.request)
        )

    @router.subscriber(topology.rpc_queue(GET_SIGN_TASK))
    async def on_get_sign_task(command: ClaimSignTask) -> RpcReply:
        if command.actor.node_id is None:
            return await reply(_refuse("A sign node's token names the node; this one does not."))
        claim = sign_assignment.SignClaim(
            key_ids=command.key_ids,
            node_id=command.actor.node_id,
            lease_seconds=settings.sign_lease_seconds,
        )
        return await reply(in_transaction(sessions, sign_assignment.claim_sign_task, claim))

    @router.subscriber(topology.rpc_queue(COMPLETE_SIGN_TASK))
    async def on_complete(command: CompleteSignTask) -> RpcReply:
        return await reply(
            in_transaction(
                sessions, signing.complete_task, command.actor, command.task_id, command.report
            )
        )

    @router.subscriber(topology.rpc_queue(CANCEL_SIGN_TASK))
    async def on_cancel(command: CancelSignTask) -> RpcReply:
        return await reply(
            in_transaction(sessions, signing.cancel_task, command.actor, command.task_id)
        )

    @event_subscriber(router, topology, CONSUMER, SignTaskPackagesReplaced)
    async def on_packages_replaced(event: SignTaskPackagesReplaced, message: RabbitMessage) -> None:
        await handle_once(sessions, CONSUMER, message.message_id, signing.record_replaced, event)

    return router


async def _refuse(detail: str) -> None:
    raise Forbidden(detail)
