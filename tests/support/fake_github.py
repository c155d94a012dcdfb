"""A fake GitHub for tests: the OAuth code exchange and three REST reads, on 127.0.0.1.

It speaks GitHub's documented wire format (docs.github.com: "Authorizing OAuth apps",
"REST API: users, emails, organization members"), GitHub Enterprise style: the web
endpoints at the root, the REST API under /api/v3. It is not GitHub: only what a
login needs, with switches for the failures GitHub really produces.
"""

import asyncio
import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.http_server import ThreadedServer
from tests.support.processes import free_port

API_PREFIX = "/api/v3"
DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
HANG_LIMIT_SECONDS = 30.0


@dataclass
class Account:
    login: str
    id: int
    # As /user/emails lists them: {"email", "primary", "verified", "visibility"}.
    emails: list[dict[str, Any]]
    # Organization login -> membership state ("active" or "pending").
    orgs: dict[str, str]
    name: str | None = None


@dataclass
class Failure:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class SeenRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class FakeGithub:
    def __init__(self) -> None:
        self.client_id = "Iv1.fakeclient0001"
        self.client_secret = secrets.token_hex(20)
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._codes: dict[str, Account] = {}
        self._tokens: dict[str, Account] = {}
        self._failures: dict[str, Failure] = {}
        self._hanging: set[str] = set()
        self._release = threading.Event()
        self._org_ids = itertools.count(1000)
        self._port = free_port()
        self._server: ThreadedServer | None = None

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        return f"{self.web_url}{API_PREFIX}"

    # -- the switches tests use -------------------------------------------------

    def account(
        self,
        login: str,
        github_id: int,
        *,
        email: str | None = None,
        emails: list[dict[str, Any]] | None = None,
        orgs: dict[str, str] | None = None,
    ) -> Account:
        """A GitHub account (by default an active AlmaLinux member with one verified e-mail)."""
        primary = email or f"{login}@users.example.org"
        return Account(
            login=login,
            id=github_id,
            emails=emails
            if emails is not None
            else [{"email": primary, "primary": True, "verified": True, "visibility": "private"}],
            orgs=orgs if orgs is not None else {"AlmaLinux": "active"},
        )

    def code_for(self, account: Account) -> str:
        """A fresh OAuth code, as GitHub appends it to the redirect; good for one exchange."""
        code = secrets.token_hex(10)
        with self._lock:
            self._codes[code] = account
        return code

    def fail_next(
        self, path: str, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        """The next request to `path` (e.g. "/user") gets this reply instead."""
        with self._lock:
            self._failures[path] = Failure(status, body, headers or {})

    def rate_limit_next(self, path: str) -> None:
        reset = str(int(time.time()) + 3600)
        self.fail_next(
            path,
            403,
            {
                "message": "API rate limit exceeded for user ID 1.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            },
            {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
        )

    def hang_next(self, path: str) -> None:
        """The next request to `path` gets no answer until `release()` (or a long while)."""
        with self._lock:
            self._hanging.add(path)
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def reset(self) -> None:
        self.release()
        with self._lock:
            self._codes.clear()
            self._tokens.clear()
            self._failures.clear()
            self._hanging.clear()
            self.requests.clear()

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        self._server = ThreadedServer(self._app(), name="fake-github", port=self._port)
        self._server.start()

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.stop()

    # -- the HTTP side --------------------------------------------------------------

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/login/oauth/access_token", self._access_token, methods=["POST"]),
                Route(f"{API_PREFIX}/user", self._user),
                Route(f"{API_PREFIX}/user/emails", self._emails),
                Route(f"{API_PREFIX}/user/memberships/orgs", self._memberships),
            ]
        )

    async def _intercept(self, request: Request, path: str) -> Response | None:
        """Records the request; answers a planned failure, or waits when told to hang."""
        body = await request.body()
        with self._lock:
            self.requests.append(
                SeenRequest(request.method, path, request.url.query, dict(request.headers), body)
            )
            failure = self._failures.pop(path, None)
            hang = path in self._hanging
            self._hanging.discard(path)
        if hang:
            await asyncio.to_thread(self._release.wait, HANG_LIMIT_SECONDS)
        if failure is not None:
            return JSONResponse(failure.body, failure.status, headers=failure.headers)
        return None

    async def _access_token(self, request: Request) -> Response:
        planned = await self._intercept(request, "/login/oauth/access_token")
        if planned is not None:
            return planned
        params = await _oauth_params(request)
        if (params.get("client_id"), params.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            reply = _oauth_error(
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
            )
        else:
            with self._lock:
                account = self._codes.pop(params.get("code", ""), None)
            if account is None:
                reply = _oauth_error(
                    "bad_verification_code", "The code passed is incorrect or expired."
                )
            else:
                token = f"gho_{secrets.token_hex(18)}"
                with self._lock:
                    self._tokens[token] = account
                reply = {
                    "access_token": token,
                    "token_type": "bearer",
                    "scope": "read:org,user:email",
                }
        # GitHub answers form-encoded unless the client asks for JSON; errors are 200 too.
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(reply)
        return Response(urlencode(reply), media_type="application/x-www-form-urlencoded")

    async def _user(self, request: Request) -> Response:
        account = await self._authenticated(request, "/user")
        if isinstance(account, Response):
            return account
        return _api_reply(self._user_payload(account))

    async def _emails(self, request: Request) -> Response:
        account = await self._authenticated(request, "/user/emails")
        if isinstance(account, Response):
            return account
        return _api_reply(_page(account.emails, request))

    async def _memberships(self, request: Request) -> Response:
        account = await self._authenticated(request, "/user/memberships/orgs")
        if isinstance(account, Response):
            return account
        state = request.query_params.get("state")
        memberships = [
            self._membership_payload(account, org, org_state)
            for org, org_state in account.orgs.items()
            if state is None or org_state == state
        ]
        return _api_reply(_page(memberships, request))

    async def _authenticated(self, request: Request, path: str) -> Account | Response:
        """The account the access token belongs to, or the reply GitHub would send instead."""
        planned = await self._intercept(request, path)
        if planned is not None:
            return planned
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if not token:
            return _api_error(401, "Requires authentication")
        with self._lock:
            account = self._tokens.get(token) if scheme.lower() in ("token", "bearer") else None
        return account if account is not None else _api_error(401, "Bad credentials")

    def _user_payload(self, account: Account) -> dict[str, Any]:
        api = self.api_url
        return {
            "login": account.login,
            "id": account.id,
            "node_id": f"MDQ6VXNlcj{account.id}",
            "avatar_url": f"https://avatars.example.org/u/{account.id}?v=4",
            "gravatar_id": "",
            "url": f"{api}/users/{account.login}",
            "html_url": f"{self.web_url}/{account.login}",
            "type": "User",
            "site_admin": False,
            "name": account.name,
            "company": None,
            "blog": "",
            "location": None,
            "email": None,  # the public e-mail; most people keep it hidden
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "public_repos": 3,
            "public_gists": 0,
            "followers": 1,
            "following": 0,
            "created_at": "2015-03-04T10:11:12Z",
            "updated_at": "2021-11-01T08:09:10Z",
        }

    def _membership_payload(self, account: Account, org: str, state: str) -> dict[str, Any]:
        api = self.api_url
        return {
            "url": f"{api}/orgs/{org}/memberships/{account.login}",
            "state": state,
            "role": "member",
            "organization_url": f"{api}/orgs/{org}",
            "organization": {
                "login": org,
                "id": next(self._org_ids),
                "node_id": "MDEyOk9yZ2FuaXphdGlvbjE=",
                "url": f"{api}/orgs/{org}",
                "repos_url": f"{api}/orgs/{org}/repos",
                "members_url": f"{api}/orgs/{org}/members{{/member}}",
                "avatar_url": "https://avatars.example.org/o/1?v=4",
                "description": None,
            },
            "user": {"login": account.login, "id": account.id, "type": "User", "site_admin": False},
        }


async def _oauth_params(request: Request) -> dict[str, str]:
    """GitHub takes the parameters in the query string, a form body or a JSON body."""
    params = dict(request.query_params)
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        loaded = await request.json()
        params.update({k: str(v) for k, v in loaded.items()})
    elif body:
        params.update(dict(parse_qsl(body.decode())))
    return params


def _oauth_error(error: str, description: str) -> dict[str, str]:
    anchor = error.replace("_", "-")
    return {"error": error, "error_description": description, "error_uri": f"{DOCS}#{anchor}"}


def _page(items: list[dict[str, Any]], request: Request) -> list[dict[str, Any]]:
    per_page = min(int(request.query_params.get("per_page", "30")), 100)
    page = max(int(request.query_params.get("page", "1")), 1)
    return items[(page - 1) * per_page : page * per_page]


def _rate_headers() -> dict[str, str]:
    return {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "4999",
        "x-ratelimit-reset": str(int(time.time()) + 3600),
        "x-ratelimit-resource": "core",
        "x-github-api-version-selected": "2022-11-28",
    }


def _api_reply(payload: Any) -> JSONResponse:
    return JSONResponse(payload, headers=_rate_headers())


def _api_error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": str(status),
        },
        status,
        headers=_rate_headers(),
    )
