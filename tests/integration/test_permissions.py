"""Every endpoint of the gateway, called with every kind of token, answers as its rule says.

The rule of a route is found in its dependency tree (the callables of
`api_gateway.policy`); a route without one fails here, so a new endpoint cannot
forget its permissions. "Allowed" means the call got past authentication: any
answer but 401/403 (bodies are left out, so 422 is a common one); 500 is a bug.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import select, update

from api_gateway import policy
from api_gateway.main import create_app as create_gateway
from api_gateway.settings import GatewaySettings
from shared.db.models import User, UserKind
from shared.db.session import SessionFactory, unit_of_work
from shared.tokens import issue_token
from tests.support.fixtures import JWT_SECRET
from tests.support.stack import TokenMaker

pytestmark = pytest.mark.usefixtures("clean_db", "auth_service")

# Framework pages and the load balancers' probe carry no data and need no rule.
UNGUARDED = {
    "/docs",
    "/docs/oauth2-redirect",
    "/openapi.json",
    "/redoc",
    "/healthz",
    # Operators' endpoints, like /healthz: counts and the message schemas, no user data.
    "/metrics",
    "/asyncapi",
    "/asyncapi.json",
}
# The only routes that may declare `Public`.
PUBLIC_ROUTES = {("POST", "/api/v1/users/login/github")}

CALLERS = (
    "none",
    "bearer_null",
    "expired",
    "revoked",
    "wrong_signature",
    "user",
    "other_user",
    "admin",
    "node",
    "sign_node",
    "alts",
    "other_service",
)
# Who each rule lets through. `{user_id}` in a path is always the id of "user".
ALLOWED: dict[Callable[..., Any], set[str]] = {
    policy.people: {"user", "other_user", "admin"},
    policy.admin: {"admin"},
    policy.build_node: {"node", "admin"},
    policy.sign_node: {"sign_node"},
    policy.alts_service: {"alts"},
    policy.self_or_admin: {"user", "admin"},
    policy.public: set(CALLERS),
}
# Values for path parameters that name nothing, so allowed calls change nothing.
UNKNOWN_ID = "999999"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def guarded_routes(app: FastAPI) -> Iterator[Any]:
    """Each route as served: full path, and router-level dependencies included."""
    # FastAPI >= 0.16x keeps included routers lazily; this walks their effective routes.
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(contexts(app.routes) if contexts is not None else app.routes)
    for route in routes:
        if route.path in UNGUARDED:
            continue
        original = getattr(route, "original_route", route)
        # A plain Starlette route or a mount would bypass the dependency system entirely.
        assert isinstance(original, APIRoute), f"{route.path}: not an APIRoute, no policy applies"
        yield route


def endpoints(app: FastAPI) -> list[Endpoint]:
    return sorted(
        {Endpoint(m, r.path) for r in guarded_routes(app) for m in r.methods or ()},
        key=lambda e: (e.path, e.method),
    )


def rules_of(route: Any) -> set[Callable[..., Any]]:
    """The rules closest to the endpoint in its dependency tree (the one that decides)."""
    level: list[Dependant] = list(route.dependant.dependencies)
    while level:
        found = {d.call for d in level if d.call in ALLOWED}
        if found:
            return found
        level = [sub for d in level for sub in d.dependencies]
    return set()


# The same app the fixtures serve, built here only to list its routes at collection time.
ENDPOINTS = endpoints(create_gateway(GatewaySettings(jwt_secret=JWT_SECRET)))


def find_route(app: FastAPI, endpoint: Endpoint) -> Any:
    for route in guarded_routes(app):
        if route.path == endpoint.path and endpoint.method in (route.methods or ()):
            return route
    raise AssertionError(f"{endpoint} is not served")


def test_every_route_declares_exactly_one_rule(gateway: FastAPI) -> None:
    problems = []
    for endpoint in endpoints(gateway):
        rules = rules_of(find_route(gateway, endpoint))
        if len(rules) != 1:
            names = sorted(r.__name__ for r in rules) or "none"
            problems.append(f"{endpoint}: rules {names}; declare one of api_gateway.policy")
        elif policy.public in rules and (endpoint.method, endpoint.path) not in PUBLIC_ROUTES:
            problems.append(f"{endpoint}: Public is only for GitHub login")
    assert not problems, "\n".join(problems)


def test_every_rule_has_expectations() -> None:
    assert set(policy.RULES) | {policy.public} == set(ALLOWED)


def test_the_schema_lists_nothing_this_test_skips(gateway: FastAPI) -> None:
    walked = {(e.method.lower(), e.path) for e in endpoints(gateway)}
    schema = gateway.openapi()["paths"]
    documented = {
        (method, path)
        for path, operations in schema.items()
        if path not in UNGUARDED
        for method in operations
    }
    assert documented <= walked


class Callers:
    """Mints each caller's token right before each call: calls may revoke earlier ones."""

    def __init__(self, make_token: TokenMaker, sessions: SessionFactory) -> None:
        self._make = make_token
        self._sessions = sessions
        self._revoked = ""

    async def prepare(self) -> None:
        revoked = await self._make("revoked-admin", admin=True)
        async with unit_of_work(self._sessions) as session:
            await session.execute(
                update(User)
                .where(User.username == "revoked-admin")
                .values(token_version=User.token_version + 1)
            )
        self._revoked = revoked

    async def user_id(self, name: str) -> int:
        async with self._sessions() as session:
            found = await session.scalar(select(User.id).where(User.username == name))
        assert found is not None
        return found

    async def headers(self, caller: str) -> dict[str, str]:
        token = await self._token(caller)
        return {"Authorization": f"Bearer {token}"} if token is not None else {}

    async def _token(self, caller: str) -> str | None:
        make = self._make
        match caller:
            case "none":
                return None
            case "bearer_null":
                return "null"
            case "revoked":
                return self._revoked
            case "expired" | "wrong_signature":
                await make("admin", admin=True)
                admin_id = await self.user_id("admin")
                secret = JWT_SECRET if caller == "expired" else "w" * 64
                issued = time.time() - 7200 if caller == "expired" else time.time()
                return issue_token(secret, admin_id, lifetime_seconds=3600, now=issued)
            case "user" | "other_user":
                return await make(caller)
            case "admin":
                return await make("admin", admin=True)
            case "node":
                return await make("node-1", kind=UserKind.NODE)
            case "sign_node":
                return await make("signer-1", kind=UserKind.SIGN_NODE)
            case "alts":
                return await make(policy.ALTS_SERVICE_NAME, kind=UserKind.SERVICE)
            case "other_service":
                return await make("gitea-bridge", kind=UserKind.SERVICE)
        raise AssertionError(f"unknown caller {caller}")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
async def test_each_caller_gets_what_the_rule_says(
    endpoint: Endpoint,
    api: httpx.AsyncClient,
    gateway: FastAPI,
    make_token: TokenMaker,
    sessions: SessionFactory,
) -> None:
    rules = rules_of(find_route(gateway, endpoint))
    assert len(rules) == 1, f"{endpoint} declares no single rule of api_gateway.policy"
    allowed = ALLOWED[rules.pop()]
    callers = Callers(make_token, sessions)
    await callers.prepare()
    await make_token("user")
    path = endpoint.path.replace("{user_id}", str(await callers.user_id("user")))
    path = _fill_unknown(path)

    wrong = []
    for caller in CALLERS:
        headers = await callers.headers(caller)
        answer = await api.request(endpoint.method, path, headers=headers)
        status = answer.status_code
        if caller in allowed and status in (401, 403):
            wrong.append(f"{caller}: {status} {answer.text}, expected to be let through")
        elif caller in allowed and status == 500:
            wrong.append(f"{caller}: 500 {answer.text}")
        elif caller not in allowed and status != 403:
            wrong.append(f"{caller}: {status} {answer.text}, expected 403")
    assert not wrong, f"{endpoint}:\n" + "\n".join(wrong)


def _fill_unknown(path: str) -> str:
    while "{" in path:
        start = path.index("{")
        path = path[:start] + UNKNOWN_ID + path[path.index("}", start) + 1 :]
    return path
