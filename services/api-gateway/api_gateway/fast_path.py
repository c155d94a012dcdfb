"""get_task without the ASGI framework: a node's hottest call (decision 0008, fourth pass).

Every node polls get_task every few seconds, mostly to hear "nothing", and Starlette/FastAPI's
stack (routing over every route, dependency solving, request and response objects) cost the
gateway more CPU than the call itself. `GatewayApp` answers exactly that path itself when
the request is one FastAPI would accept: a bearer token of a build node (or an
administrator), a JSON body within the size limit that `GetTaskRequest` validates. It
checks them with the same code (`actor_for`, `may_act_as_build_node`, the same model), then
answers as the route does (`idle_poll.next_task`) and sends the result on as raw bytes.

Anything else — no or bad token, another kind of account, a malformed `X-Node-Id`, a body
that is too large, not JSON or invalid, another content type, a `root_path` — is passed to
FastAPI with the body it already read replayed, so every refusal is FastAPI's own answer
(its status and body shape) and checking it twice costs only on the error path. Nothing
before the RPC has a side effect, so the replay is safe; once the RPC is sent, its failures
are answered by the app's own exception handlers. The request id, metrics and access line
come from the same `ObserveRequests` middleware, and the routes stay in the OpenAPI
document because they are still FastAPI routes.
"""

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_gateway.auth import NODE_HEADER, actor_for
from api_gateway.errors import CatchAll
from api_gateway.idle_poll import next_task
from api_gateway.observability import ObserveRequests
from api_gateway.policy import may_act_as_build_node
from api_gateway.routes import build_node
from shared.contracts.build_node import GetTask, GetTaskRequest
from shared.contracts.messages import Actor

GET_TASK_PATH = "/api/v1/build_node/get_task"
_AUTHORIZATION = b"authorization"
_NODE = NODE_HEADER.encode()
_CONTENT_TYPE = b"content-type"
_JSON = b"application/json"
_HEADERS = [(b"content-type", _JSON)]

Handler = Callable[[Request, Exception], Awaitable[Any]]


class GatewayApp(FastAPI):
    """FastAPI, with get_task answered before the framework's stack when it can be."""

    _fast: ASGIApp | None = None
    _routes: dict[str, APIRoute | None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != GET_TASK_PATH
            or scope["method"] not in ("GET", "POST")
            or scope.get("root_path")
        ):
            await super().__call__(scope, receive, send)
            return
        if self._fast is None:
            self._fast = ObserveRequests(CatchAll(self._claim))
        scope["app"] = self
        read, complete = await self._read_body(receive)
        prepared = await self._prepare(scope, read) if complete else None
        if prepared is None:
            await super().__call__(scope, _replay(read, receive), send)
            return
        scope["albs.get_task"] = prepared
        await self._fast(scope, receive, send)

    async def _read_body(self, receive: Receive) -> tuple[list[Message], bool]:
        """The request's messages as received, and whether they hold a whole body within
        the limit (otherwise FastAPI gets them back and refuses the request itself)."""
        messages: list[Message] = []
        size, limit = 0, self.max_body_size
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages, False
            size += len(message.get("body", b""))
            if limit is not None and size > limit:
                return messages, False
            if not message.get("more_body", False):
                return messages, True

    async def _prepare(self, scope: Scope, messages: list[Message]) -> GetTask | None:
        """The RPC request, if FastAPI would make it; None for anything it would refuse."""
        authorization = node = content_type = None
        for name, value in scope["headers"]:
            if name == _AUTHORIZATION and authorization is None:
                authorization = value
            elif name == _NODE and node is None:
                node = value
            elif name == _CONTENT_TYPE and content_type is None:
                content_type = value
        if content_type != _JSON or authorization is None:
            return None
        scheme, _, credentials = authorization.decode("latin-1").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            return None
        try:
            # As FastAPI reads a JSON body: json.loads, then the model in Python mode.
            body = GetTaskRequest.model_validate(
                json.loads(b"".join(m.get("body", b"") for m in messages))
            )
            settings = self.state.settings
            actor: Actor = await actor_for(
                settings.jwt_secret.get_secret_value(),
                self.state.users,
                credentials,
                None if node is None else node.decode("latin-1"),
            )
        except Exception:  # invalid, refused (403, 422) or a backend failure: FastAPI answers
            return None
        if not may_act_as_build_node(actor):
            return None
        return GetTask(actor=actor, supported_arches=body.supported_arches)

    async def _claim(self, scope: Scope, receive: Receive, send: Send) -> None:
        # For ObserveRequests: the metrics and the access line name the route template.
        scope["route"] = self._route(scope["method"])
        try:
            task = await next_task(self.state.runnable, self.state.rpc, scope["albs.get_task"])
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise  # CatchAll answers a JSON 500 with an error id
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(task)).encode()), *_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": task})

    def _handler_for(self, exc: Exception) -> Handler | None:
        """The app's handler for this exception, looked up as Starlette does (by its MRO)."""
        for cls in type(exc).__mro__:
            handler = self.exception_handlers.get(cls)
            if handler is not None:
                return handler  # type: ignore[return-value]
        return None

    def _route(self, method: str) -> APIRoute | None:
        if self._routes is None:
            # The router's own route objects: FastAPI includes routers lazily, so the app's
            # `routes` do not list them.
            self._routes = {
                m: next(
                    (
                        r
                        for r in build_node.router.routes
                        if isinstance(r, APIRoute)
                        and r.path == GET_TASK_PATH
                        and m in (r.methods or ())
                    ),
                    None,
                )
                for m in ("GET", "POST")
            }
        return self._routes[method]


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives back what was already read, then what the server sends next."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
