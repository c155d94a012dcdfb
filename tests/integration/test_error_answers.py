"""An unexpected error is a JSON 500 with an id that is in the log, on a connection that
stays open; a database that is down is a 503 a person can read."""

import logging

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy.exc import OperationalError

from api_gateway.errors import install_error_handlers
from tests.support.http_server import ThreadedServer


def app_with_failures() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/port")
    async def port(request: Request) -> int:
        assert request.client is not None
        return request.client.port

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    @app.get("/database-down")
    async def database_down() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))

    return app


def test_a_bug_is_a_json_500_with_an_id_and_the_connection_stays_usable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        ThreadedServer(app_with_failures(), name="errors") as server,
        httpx.Client(base_url=server.url, limits=httpx.Limits(max_connections=1)) as client,
    ):
        first_port = client.get("/port").json()
        with caplog.at_level(logging.ERROR, logger="api_gateway.errors"):
            answer = client.get("/bug")
        second_port = client.get("/port").json()

    assert answer.status_code == 500
    error_id = answer.json()["error_id"]
    assert error_id in answer.json()["detail"]
    assert any(error_id in record.getMessage() for record in caplog.records)
    assert second_port == first_port  # the same TCP connection served all three


def test_a_database_that_is_down_is_a_readable_503() -> None:
    with ThreadedServer(app_with_failures(), name="errors") as server:
        answer = httpx.get(f"{server.url}/database-down")
    assert answer.status_code == 503
    assert answer.json() == {
        "detail": "The database is unavailable or overloaded; try again shortly."
    }
