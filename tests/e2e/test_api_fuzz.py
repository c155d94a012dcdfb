"""Property-based fuzzing of the gateway's OpenAPI document against real service processes.

schemathesis generates requests for every operation the gateway declares: valid ones and
invalid ones (wrong types, values out of range, missing fields, strange strings), plus the
boundary cases of its coverage phase. Each request is sent by an administrator and by a
plain user, and every answer must be no 5xx, a status the document declares, with the
content type and body schema it declares.

The stack is its own (database, RabbitMQ and Redis prefixes): gateway, one scheduler and
the auth service (logging in through the fake GitHub), so nothing the fuzzer creates,
revokes or promotes reaches another test. The run is reproducible (fixed seed,
derandomized) and bounded: a few examples per operation and a timeout per request.
"""

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from pydantic import SecretStr
from schemathesis import BaseSchema, Case, GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.ext.asyncio import AsyncSession

from api_gateway.main import create_app as create_gateway
from api_gateway.settings import GatewaySettings
from auth.settings import AuthSettings
from auth.users import ensure_user, token_for
from shared.db.models import User, UserKind
from shared.db.session import create_engine, create_session_factory, in_transaction
from tests.support.fake_github import FakeGithub
from tests.support.fixtures import env_of, first_build_id, scratch_database, scratch_prefix
from tests.support.live_stack import LiveStack, pulp_env, running_stack
from tests.support.servers import Servers
from tests.support.stack import settings_for

pytestmark = [pytest.mark.e2e]

MAX_EXAMPLES = 25  # per operation and generation mode, besides the coverage phase's cases
REQUEST_TIMEOUT = 15.0  # seconds; the gateway's own RPC timeout is 10 s
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
REVOKE = ("POST", "/api/v1/users/{user_id}/revoke-tokens")
SET_ADMIN = ("PUT", "/api/v1/users/{user_id}/admin")


@dataclass(frozen=True)
class Caller:
    name: str
    admin: bool
    user_id: int
    headers: dict[str, str]


class Callers:
    """The fuzzer's two accounts, as they should be: the administrator and the plain user.

    The fuzzer may revoke the user's tokens or promote it (as the administrator); after
    such an answer both accounts are put back and fresh tokens minted, so every example
    runs as the role it names.
    """

    NAMES = (("fuzz-admin", True), ("fuzz-user", False))

    def __init__(self, portal: BlockingPortal, env: dict[str, str]) -> None:
        self._portal = portal
        self._env = env
        self._engine = create_engine(env["ALBS_DATABASE_URL"], pool_size=1)
        self._sessions = create_session_factory(self._engine)
        self.current: list[Caller] = []
        self.restore()

    def restore(self) -> None:
        self.current = self._portal.call(self._restore)

    async def _restore(self) -> list[Caller]:
        settings = settings_for(AuthSettings, self._env)
        callers = []
        for name, admin in self.NAMES:
            user = await in_transaction(self._sessions, _reset_user, name, admin)
            headers = {"Authorization": f"Bearer {token_for(user, settings)}"}
            callers.append(Caller(name, admin, user.id, headers))
        return callers

    def close(self) -> None:
        self._portal.call(self._engine.dispose)

    def may_call(self, caller: Caller, case: Case[Any]) -> bool:
        """Everything, except revoking the caller's own tokens or taking its own admin flag."""
        operation = (case.method.upper(), case.path)
        targets_self = (case.path_parameters or {}).get("user_id") == caller.user_id
        if operation == REVOKE:
            return not targets_self
        if operation == SET_ADMIN and targets_self:
            return not (isinstance(case.body, dict) and case.body.get("is_admin") is False)
        return True

    def after(self, case: Case[Any], response: schemathesis.Response) -> None:
        if (case.method.upper(), case.path) in (REVOKE, SET_ADMIN) and response.status_code < 300:
            self.restore()


async def _reset_user(session: AsyncSession, name: str, admin: bool) -> User:
    user = await ensure_user(
        session, name, email=f"{name}@example.org", kind=UserKind.USER, admin=admin
    )
    user.is_admin = admin
    await session.flush()
    return user


@pytest.fixture(scope="module")
def fuzz_env(servers: Servers, run_id: str, fake_github: FakeGithub) -> Iterator[dict[str, str]]:
    database = f"albs_test_{run_id}_fuzz"
    for url in scratch_database(servers, database, first_build_id(run_id, offset=1500)):
        for prefix in scratch_prefix(servers, f"test-{run_id}-fuzz"):
            yield {
                **env_of(servers, url, prefix),
                **pulp_env(),
                "ALBS_GITHUB_CLIENT_ID": fake_github.client_id,
                "ALBS_GITHUB_CLIENT_SECRET": fake_github.client_secret,
                "ALBS_GITHUB_WEB_URL": fake_github.web_url,
                "ALBS_GITHUB_API_URL": fake_github.api_url,
                "ALBS_GITHUB_TIMEOUT_SECONDS": "2",
            }


@pytest.fixture(scope="module")
async def fuzz_stack(
    fuzz_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveStack]:
    # Every service an operation can reach: distributions are the artifacts service's.
    services = [
        ("scheduler", "albs-scheduler"),
        ("auth", "albs-auth"),
        ("artifacts", "albs-artifacts"),
    ]
    logs = Path(tmp_path_factory.mktemp("fuzz-stack"))
    async with running_stack(fuzz_env, logs, services) as stack:
        yield stack


@pytest.fixture(scope="module")
def callers(fuzz_stack: LiveStack) -> Iterator[Callers]:
    with start_blocking_portal() as portal:
        accounts = Callers(portal, fuzz_stack.env)
        try:
            yield accounts
        finally:
            accounts.close()


def _document() -> dict[str, Any]:
    """The gateway's OpenAPI document, known at collection: one test per operation."""
    app = create_gateway(GatewaySettings(jwt_secret=SecretStr("collection-only-" + "x" * 32)))
    return app.openapi()


DOCUMENT = _document()
OPERATIONS = [(m.upper(), path) for path, ops in DOCUMENT["paths"].items() for m in ops]
# Negative examples need something to break: a parameter or a body.
CASES = [
    (mode, method, path)
    for method, path in OPERATIONS
    for mode in GenerationMode
    if mode == GenerationMode.POSITIVE
    or {"parameters", "requestBody"} & set(DOCUMENT["paths"][path][method.lower()])
]


@pytest.fixture(scope="module")
def gateway_schema(fuzz_stack: LiveStack) -> BaseSchema:
    served = requests.get(f"{fuzz_stack.gateway_url}/openapi.json", timeout=REQUEST_TIMEOUT)
    served.raise_for_status()
    assert [(m.upper(), p) for p, ops in served.json()["paths"].items() for m in ops] == OPERATIONS
    config = schemathesis.Config.from_dict(
        {
            "generation": {
                # The callers' tokens are ours; generated Authorization headers would only
                # test the token parser, which tests/integration/test_permissions.py does.
                "with-security-parameters": False,
            },
        }
    )
    return schemathesis.openapi.from_dict(served.json(), config=config)


# Hypothesis drives the generation directly (schemathesis' own pytest plugin does not run on
# pytest 9.2): derandomized, so every run sends the same requests.
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
    verbosity=hypothesis.Verbosity.quiet,
)


@pytest.mark.parametrize(
    ("mode", "method", "path"), CASES, ids=[f"{m.value} {o} {p}" for m, o, p in CASES]
)
def test_every_answer_is_declared_and_none_is_a_server_error(
    mode: GenerationMode,
    method: str,
    path: str,
    gateway_schema: BaseSchema,
    callers: Callers,
    fuzz_stack: LiveStack,
) -> None:
    operation = gateway_schema.find_operation_by_label(f"{method} {path}")
    assert operation is not None
    calls: list[int] = []

    @FUZZ_SETTINGS
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Case[Any]) -> None:
        with requests.Session() as session:
            for caller in list(callers.current):
                if not callers.may_call(caller, case):
                    continue
                response = case.call(
                    base_url=fuzz_stack.gateway_url,
                    session=session,
                    headers=caller.headers,
                    timeout=REQUEST_TIMEOUT,
                )
                calls.append(response.status_code)
                with _logs_on_failure(fuzz_stack, caller):
                    case.validate_response(response, checks=CHECKS, headers=caller.headers)
                callers.after(case, response)

    fuzz()
    assert calls, f"no request was sent for {method} {path}"


@contextlib.contextmanager
def _logs_on_failure(stack: LiveStack, caller: Caller) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        exc.add_note(f"as {caller.name}; service logs:\n{stack.logs()}")
        raise
