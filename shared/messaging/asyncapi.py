"""The AsyncAPI document of the system, generated from the contracts and the topology.

Every event class in `shared.contracts` becomes a publisher on the events exchange (its
routing key); every subscription in SUBSCRIPTIONS a subscriber on its consumer's queue;
every RPC in RPCS a subscriber on its request queue and a publisher of its reply envelope
(to the caller's reply-to queue). FastStream renders the payload schemas from the pydantic
models. The broker here is never connected: it only carries the declarations.
"""

import importlib
import json
import pkgutil
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.specification import AsyncAPI, Specification, get_asyncapi_html
from pydantic import BaseModel, create_model

import shared.contracts
from shared.contracts.messages import Event, RpcError, RpcSpec
from shared.contracts.topology import RPCS, SUBSCRIPTIONS, Topology

TITLE = "ALBS control plane messages"
VERSION = "0.1.0"


def contract_modules() -> Iterator[Any]:
    for module in pkgutil.iter_modules(shared.contracts.__path__):
        yield importlib.import_module(f"shared.contracts.{module.name}")


def all_events() -> list[type[Event]]:
    """Every concrete event class of the contracts (those with a routing key)."""
    list(contract_modules())
    found: list[type[Event]] = []
    pending = list(Event.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "routing_key" in vars(cls) and cls not in found:
            found.append(cls)
    return sorted(found, key=lambda cls: cls.routing_key)


def all_rpc_specs() -> list[RpcSpec[Any, Any]]:
    """Every RpcSpec defined at module level in the contracts."""
    specs = {
        value.name: value
        for module in contract_modules()
        for value in vars(module).values()
        if isinstance(value, RpcSpec)
    }
    return [specs[name] for name in sorted(specs)]


def reply_model(spec: RpcSpec[Any, Any]) -> type[BaseModel]:
    """The reply envelope of one RPC with its result typed."""
    name = "".join(part.title() for part in spec.name.replace(".", "_").split("_")) + "Reply"
    result: Any = spec.result | None if spec.result is not None else None
    return create_model(name, ok=(bool, ...), result=(result, None), error=(RpcError | None, None))


def _consumer(model: type[BaseModel]) -> Callable[..., Any]:
    async def handle(body: model) -> None:  # type: ignore[valid-type]
        pass  # documentation only: never called

    return handle


def document_broker(prefix: str) -> RabbitBroker:
    topology = Topology(prefix)
    broker = RabbitBroker("amqp://documentation-only/")
    for event in all_events():
        broker.publisher(
            exchange=topology.events,
            routing_key=event.routing_key,
            schema=event,
            title=f"event {event.routing_key}",
            description=(event.__doc__ or "").strip() or None,
        )
    for consumer, event in SUBSCRIPTIONS:
        broker.subscriber(
            topology.event_queue(consumer, event),
            topology.events,
            title=f"{consumer} consumes {event.routing_key}",
            description=f"The {consumer} service's queue of {event.routing_key} events.",
        )(_consumer(event))
    for spec in RPCS:
        broker.subscriber(
            topology.rpc_queue(spec),
            title=f"rpc {spec.name}",
            description=f"Request of the {spec.name} RPC; the reply goes to its reply-to.",
        )(_consumer(spec.request))
        broker.publisher(
            RabbitQueue("amq.rabbitmq.reply-to"),
            title=f"rpc {spec.name} reply",
            schema=reply_model(spec),
            description=f"Reply of the {spec.name} RPC (same correlation id as the request).",
        )
    return broker


@cache
def specification(prefix: str = "albs") -> Specification:
    factory = AsyncAPI(
        document_broker(prefix),
        title=TITLE,
        version=VERSION,
        description="Events travel on the topic exchange `<prefix>.events` by routing key; "
        "RPC requests go to `<prefix>.rpc.<name>` queues. Messages carry the request's "
        "correlation id in the `x-correlation-id` header.",
        schema_version="3.0.0",
    )
    return factory.to_specification()


def asyncapi_json(prefix: str = "albs") -> str:
    return specification(prefix).to_json()


def asyncapi_html(prefix: str = "albs") -> str:
    """A page rendering the document (its viewer's script comes from a CDN)."""
    return get_asyncapi_html(specification(prefix), try_it_out_path=None)


def asyncapi_document(prefix: str = "albs") -> dict[str, Any]:
    document: dict[str, Any] = json.loads(asyncapi_json(prefix))
    return document
