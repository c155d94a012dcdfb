"""The AsyncAPI document lists every message type of shared/contracts.

Discovery here is independent of the generator: any Event subclass with a routing key and
any module-level RpcSpec in a contracts module must be in the document, so a new message
type (or an RPC left out of topology.RPCS) fails this test until it is declared.
"""

import importlib
import pkgutil
from typing import Any

import shared.contracts
from shared.contracts.messages import Event, RpcSpec
from shared.messaging.asyncapi import asyncapi_document, reply_model


def _modules() -> list[Any]:
    return [
        importlib.import_module(f"shared.contracts.{info.name}")
        for info in pkgutil.iter_modules(shared.contracts.__path__)
    ]


def _events() -> set[type[Event]]:
    found = set()
    for module in _modules():
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Event)
                and "routing_key" in vars(value)
            ):
                found.add(value)
    return found


def _rpcs() -> list[RpcSpec[Any, Any]]:
    return [v for m in _modules() for v in vars(m).values() if isinstance(v, RpcSpec)]


def test_the_contracts_have_messages_to_find() -> None:
    assert len(_events()) >= 10
    assert len(_rpcs()) >= 10


def test_every_event_is_a_message_with_its_schema() -> None:
    document = asyncapi_document()
    messages = document["components"]["messages"]
    schemas = document["components"]["schemas"]
    missing = [
        event.routing_key
        for event in _events()
        if f"event {event.routing_key}:Message" not in messages or event.__name__ not in schemas
    ]
    assert not missing, f"events missing from the AsyncAPI document: {sorted(missing)}"


def test_every_rpc_has_its_request_and_its_reply() -> None:
    document = asyncapi_document()
    messages = document["components"]["messages"]
    schemas = document["components"]["schemas"]
    missing = []
    for spec in _rpcs():
        request = f"rpc {spec.name}:SubscribeMessage"
        reply = f"rpc {spec.name} reply:Message"
        if request not in messages or reply not in messages:
            missing.append(spec.name)
        elif spec.request.__name__ not in schemas or reply_model(spec).__name__ not in schemas:
            missing.append(f"{spec.name} (schemas)")
        elif spec.result is not None and spec.result.__name__ not in schemas:
            missing.append(f"{spec.name} (result {spec.result.__name__})")
    assert not missing, f"RPCs missing from the AsyncAPI document: {sorted(missing)}"


def test_channels_name_the_real_queues_and_exchange_of_the_prefix() -> None:
    channels = asyncapi_document("albs")["channels"].values()
    amqp = [channel["bindings"]["amqp"] for channel in channels]
    queues = {binding["queue"]["name"] for binding in amqp if binding["is"] == "queue"}
    # Replies go through the default exchange (no name) to the caller's reply-to.
    exchanges = {
        binding["exchange"].get("name") for binding in amqp if binding["is"] == "routingKey"
    }
    assert {"albs.rpc.build.create", "albs.scheduler.build.repos_ready"} <= queues
    assert exchanges == {"albs.events", None}
