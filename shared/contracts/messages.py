"""Shapes every RPC and event shares: the caller, the reply envelope, event metadata."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, Field

from shared.contracts.base import WireModel


class Actor(WireModel):
    """Who asked, as the gateway learned it from the verified token."""

    user_id: int
    name: str
    is_admin: bool = False
    kind: str = "user"
    node_id: str | None = None


class RpcError(WireModel):
    status: int
    detail: str


class RpcReply(WireModel):
    """Every RPC answers this: a result, or an error a person can act on."""

    ok: bool
    result: Any = None
    error: RpcError | None = None

    @classmethod
    def success(cls, result: BaseModel | list[BaseModel] | dict[str, Any] | None) -> "RpcReply":
        """`result` as a model, a list of them, or a dict that already is its JSON form."""
        if isinstance(result, dict):
            return cls(ok=True, result=result)
        if isinstance(result, list):
            return cls(ok=True, result=[item.model_dump(mode="json") for item in result])
        dumped = result.model_dump(mode="json") if result is not None else None
        return cls(ok=True, result=dumped)

    @classmethod
    def failure(cls, status: int, detail: str) -> "RpcReply":
        return cls(ok=False, error=RpcError(status=status, detail=detail))


Req = TypeVar("Req", bound=BaseModel)
Res = TypeVar("Res", bound=BaseModel)


@dataclass(frozen=True)
class RpcSpec(Generic[Req, Res]):
    """One RPC: its name (queue suffix), request model and result model (None = `null`).

    `timeout_seconds`: an RPC whose handler waits on Pulp is given this long at least.
    """

    name: str
    request: type[Req]
    result: type[Res] | None
    timeout_seconds: float | None = None


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(WireModel):
    """Something that happened; the routing key names it in the past tense."""

    routing_key: ClassVar[str]

    occurred_at: datetime = Field(default_factory=utcnow)
