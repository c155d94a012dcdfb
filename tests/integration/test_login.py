"""GitHub login end to end: gateway -> RPC -> auth service -> (fake) GitHub and PostgreSQL."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import jwt
import pytest
from sqlalchemy import select, text

from api_gateway.main import create_app as create_gateway
from api_gateway.settings import GatewaySettings
from auth.github import GithubIdentity
from auth.login import record_login
from auth.main import create_app as create_auth
from shared.db.models import User, UserKind
from shared.db.session import SessionFactory
from tests.support.fake_github import FakeGithub
from tests.support.fixtures import JWT_SECRET
from tests.support.stack import TokenMaker, auth_settings_for, bearer, settings_for

URL = "/api/v1/users/login/github"
# The frontend's interceptor adds its stored token to every call, even before there is one.
FRONTEND_HEADERS = {"authorization": "Bearer null"}
NOT_A_MEMBER = "You should be a part of AlmaLinux github organization to login."

pytestmark = pytest.mark.usefixtures("clean_db", "auth_service")


@pytest.fixture
def github(fake_github: FakeGithub) -> Iterator[FakeGithub]:
    fake_github.reset()
    yield fake_github
    fake_github.reset()


async def login(api: httpx.AsyncClient, code: str) -> httpx.Response:
    return await api.post(URL, json={"code": code}, headers=FRONTEND_HEADERS)


async def users(sessions: SessionFactory) -> list[User]:
    async with sessions() as session:
        return list(await session.scalars(select(User).order_by(User.id)))


async def test_member_logs_in_with_the_primary_verified_email(
    api: httpx.AsyncClient, github: FakeGithub, sessions: SessionFactory
) -> None:
    account = github.account(
        "jdoe",
        4242,
        emails=[
            {"email": "old@example.org", "primary": False, "verified": False, "visibility": None},
            {"email": "jdoe@example.org", "primary": True, "verified": True, "visibility": None},
            {"email": "alt@example.org", "primary": False, "verified": True, "visibility": None},
        ],
    )
    answer = await login(api, github.code_for(account))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"id", "username", "email", "jwt_token"}
    assert (body["username"], body["email"]) == ("jdoe", "jdoe@example.org")

    claims = jwt.decode(body["jwt_token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["identity"] == {"user_id": body["id"]}
    assert claims["sub"] == str(body["id"])
    assert claims["expires"] == claims["exp"] > claims["iat"]
    assert claims["kind"] == "user"

    me = await api.get("/api/v1/users/me", headers=bearer(body["jwt_token"]))
    assert me.json() == {
        "id": body["id"],
        "username": "jdoe",
        "email": "jdoe@example.org",
        "kind": "user",
        "is_admin": False,
    }
    [stored] = await users(sessions)
    assert (stored.github_id, stored.kind, stored.is_admin) == (4242, UserKind.USER, False)


async def test_the_client_asks_for_json_and_keeps_secrets_out_of_urls(
    api: httpx.AsyncClient, github: FakeGithub
) -> None:
    code = github.code_for(github.account("jdoe", 1))
    assert (await login(api, code)).status_code == 200
    exchange, *reads = github.requests
    assert exchange.headers["accept"] == "application/json"
    assert github.client_secret.encode() in exchange.body
    assert code.encode() in exchange.body
    assert github.client_secret not in exchange.query
    assert code not in exchange.query
    assert [r.path for r in reads] == ["/user", "/user/emails", "/user/memberships/orgs"]
    assert all(r.headers["authorization"].startswith("Bearer gho_") for r in reads)


async def test_next_login_matches_by_github_id_and_refreshes_email_and_name(
    api: httpx.AsyncClient, github: FakeGithub, sessions: SessionFactory
) -> None:
    account = github.account("jdoe", 77, email="first@example.org")
    first = (await login(api, github.code_for(account))).json()

    account.login = "jane-doe"
    account.emails[0]["email"] = "second@example.org"
    second = (await login(api, github.code_for(account))).json()

    assert second["id"] == first["id"]
    assert (second["username"], second["email"]) == ("jane-doe", "second@example.org")
    assert [(u.username, u.email) for u in await users(sessions)] == [
        ("jane-doe", "second@example.org")
    ]


async def test_a_user_created_by_name_is_claimed_and_keeps_its_rights(
    api: httpx.AsyncClient, github: FakeGithub, make_token: TokenMaker, sessions: SessionFactory
) -> None:
    await make_token("root", admin=True)
    [before] = await users(sessions)
    answer = await login(api, github.code_for(github.account("root", 9001)))
    assert answer.json()["id"] == before.id
    [after] = await users(sessions)
    assert (after.github_id, after.is_admin) == (9001, True)


async def test_a_machine_account_name_cannot_log_in(
    api: httpx.AsyncClient, github: FakeGithub, make_token: TokenMaker, sessions: SessionFactory
) -> None:
    await make_token("alts", kind=UserKind.SERVICE)
    answer = await login(api, github.code_for(github.account("alts", 5)))
    assert answer.status_code == 403
    assert answer.json() == {"detail": '"alts" is the name of a service account; it cannot log in.'}
    [service] = await users(sessions)
    assert service.github_id is None


async def test_a_name_bound_to_another_github_account_is_409(
    api: httpx.AsyncClient, github: FakeGithub, sessions: SessionFactory
) -> None:
    assert (await login(api, github.code_for(github.account("jdoe", 1)))).status_code == 200
    # GitHub account 1 renamed itself away; someone else took the name "jdoe".
    answer = await login(api, github.code_for(github.account("jdoe", 2)))
    assert answer.status_code == 409
    assert "belongs to another GitHub account" in answer.json()["detail"]
    assert [u.github_id for u in await users(sessions)] == [1]


@pytest.mark.parametrize(
    "orgs",
    [
        {"AlmaLinux": "pending"},  # invited, not yet accepted
        {"CentOS": "active", "rpms": "active"},
        {},
    ],
)
async def test_only_active_members_of_the_org_log_in(
    api: httpx.AsyncClient, github: FakeGithub, sessions: SessionFactory, orgs: dict[str, str]
) -> None:
    answer = await login(api, github.code_for(github.account("guest", 3, orgs=orgs)))
    assert answer.status_code == 403
    assert answer.json() == {"detail": NOT_A_MEMBER}
    assert await users(sessions) == []


async def test_membership_is_found_beyond_the_first_page(
    api: httpx.AsyncClient, github: FakeGithub
) -> None:
    orgs = {f"org-{n:03}": "active" for n in range(150)} | {"almalinux": "active"}
    answer = await login(api, github.code_for(github.account("busy", 8, orgs=orgs)))
    assert answer.status_code == 200, answer.text


async def test_an_account_without_a_verified_primary_email_is_refused(
    api: httpx.AsyncClient, github: FakeGithub, sessions: SessionFactory
) -> None:
    emails = [
        {"email": "a@example.org", "primary": True, "verified": False, "visibility": "private"},
        {"email": "b@example.org", "primary": False, "verified": True, "visibility": None},
    ]
    answer = await login(api, github.code_for(github.account("jdoe", 1, emails=emails)))
    assert answer.status_code == 403
    assert "no verified primary e-mail" in answer.json()["detail"]
    assert await users(sessions) == []


async def test_a_bad_or_reused_code_is_400_with_githubs_reason(
    api: httpx.AsyncClient, github: FakeGithub
) -> None:
    code = github.code_for(github.account("jdoe", 1))
    assert (await login(api, code)).status_code == 200
    for bad in (code, "never-issued"):
        answer = await login(api, bad)
        assert answer.status_code == 400
        assert answer.json() == {
            "detail": "GitHub did not accept the login code "
            "(bad_verification_code: The code passed is incorrect or expired.)."
        }


async def test_refused_client_credentials_are_503_for_the_operator(
    api: httpx.AsyncClient, github: FakeGithub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The OAuth app's secret was rotated on GitHub but not in our settings.
    monkeypatch.setattr(github, "client_secret", "rotated-on-github")
    answer = await login(api, github.code_for(github.account("jdoe", 1)))
    assert answer.status_code == 503
    assert "OAuth app settings" in answer.json()["detail"]


def plan_server_error(github: FakeGithub, path: str) -> None:
    github.fail_next(path, 502, {"message": "Server Error"})


def plan_rate_limit(github: FakeGithub, path: str) -> None:
    github.rate_limit_next(path)


def plan_hang(github: FakeGithub, path: str) -> None:
    github.hang_next(path)


def plan_garbage(github: FakeGithub, path: str) -> None:
    github.fail_next(path, 200, {"unexpected": True})


@pytest.mark.parametrize(
    ("path", "plan", "status", "detail"),
    [
        ("/login/oauth/access_token", plan_server_error, 502, "GitHub answered 502"),
        ("/user", plan_server_error, 502, "GitHub answered 502 to /user"),
        ("/user/emails", plan_rate_limit, 503, "rate limit"),
        ("/user/memberships/orgs", plan_rate_limit, 503, "rate limit"),
        ("/user", plan_hang, 503, "GitHub did not answer /user within 2 s"),
        ("/login/oauth/access_token", plan_garbage, 502, "unexpected reply"),
        ("/user", plan_garbage, 502, "unexpected reply to /user"),
    ],
)
async def test_github_trouble_is_a_clear_502_or_503_and_writes_nothing(
    api: httpx.AsyncClient,
    github: FakeGithub,
    sessions: SessionFactory,
    path: str,
    plan: Callable[[FakeGithub, str], None],
    status: int,
    detail: str,
) -> None:
    plan(github, path)
    answer = await login(api, github.code_for(github.account("jdoe", 1)))
    assert answer.status_code == status, answer.text
    assert detail in answer.json()["detail"]
    assert await users(sessions) == []


async def test_a_refused_api_read_is_403_naming_the_scopes(
    api: httpx.AsyncClient, github: FakeGithub
) -> None:
    github.fail_next("/user/memberships/orgs", 403, {"message": "Must have admin rights"})
    answer = await login(api, github.code_for(github.account("jdoe", 1)))
    assert answer.status_code == 403
    assert "read:org" in answer.json()["detail"]


async def test_no_secret_reaches_the_logs_or_the_database(
    api: httpx.AsyncClient,
    github: FakeGithub,
    sessions: SessionFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # INFO is the services' level; at DEBUG aiormq dumps raw AMQP frames, replies included.
    caplog.set_level(logging.INFO)
    code = github.code_for(github.account("jdoe", 1))
    body = (await login(api, code)).json()
    access_token = github.requests[1].headers["authorization"].removeprefix("Bearer ")
    secrets = (code, access_token, github.client_secret, body["jwt_token"], JWT_SECRET)
    assert "login: jdoe" in caplog.text  # the capture did see the service's log
    assert not [s for s in secrets if s in caplog.text]
    async with sessions() as session:
        row = (await session.execute(text("SELECT * FROM users"))).one()
    assert not [s for s in secrets if any(s in str(value) for value in row)]


async def test_two_first_logins_at_once_make_one_user(
    github: FakeGithub, sessions: SessionFactory
) -> None:
    identity = GithubIdentity(github_id=31, login="racer", email="racer@example.org")
    first, second = await asyncio.gather(
        record_login(sessions, identity), record_login(sessions, identity)
    )
    assert first.id == second.id
    assert len(await users(sessions)) == 1


async def test_an_empty_or_missing_code_is_422(api: httpx.AsyncClient) -> None:
    for body in ({}, {"code": ""}):
        answer = await api.post(URL, json=body, headers=FRONTEND_HEADERS)
        assert answer.status_code == 422


@pytest.fixture
async def api_without_github(
    service_env: dict[str, str], amqp_prefix: str, fake_github: FakeGithub
) -> AsyncIterator[httpx.AsyncClient]:
    """Another auth service and gateway, on their own queues, with no GitHub app configured."""
    prefix = f"{amqp_prefix}-nogithub"
    auth = create_auth(
        auth_settings_for(
            service_env,
            fake_github,
            amqp_prefix=prefix,
            github_client_id=None,
            github_client_secret=None,
        )
    )
    gateway = create_gateway(settings_for(GatewaySettings, service_env, amqp_prefix=prefix))
    await auth.start()
    try:
        async with gateway.router.lifespan_context(gateway):
            transport = httpx.ASGITransport(app=gateway)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                yield client
    finally:
        await auth.stop()


async def test_login_without_a_github_app_is_503(
    api_without_github: httpx.AsyncClient, fake_github: FakeGithub
) -> None:
    fake_github.reset()
    answer = await login(api_without_github, "any-code")
    assert answer.status_code == 503
    assert answer.json() == {"detail": "GitHub login is not configured on this server."}
    assert fake_github.requests == []
