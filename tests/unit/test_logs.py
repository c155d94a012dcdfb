"""Log lines carry the correlation id, JSON lines parse, and secrets never show."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from api_gateway.observability import access_level
from shared import correlation
from shared.contracts.messages import RpcReply
from shared.logs import CorrelationFilter, formatter, redact
from shared.messaging.observe import handler_label, is_quiet, outcome_of

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def capture(log_format: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(log_format))  # type: ignore[arg-type]
    handler.addFilter(CorrelationFilter())
    logger = logging.getLogger(f"test-logs-{log_format}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


@pytest.fixture
def request_id() -> Iterator[str]:
    token = correlation.bind("req-1234abcd")
    yield "req-1234abcd"
    correlation.unbind(token)


def test_a_json_line_carries_the_correlation_id(request_id: str) -> None:
    logger, stream = capture("json")
    logger.info("created build %d", 7)
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "created build 7"
    assert entry["correlation_id"] == request_id
    assert entry["level"] == "INFO"


def test_a_text_line_carries_the_correlation_id(request_id: str) -> None:
    logger, stream = capture("text")
    logger.info("created build")
    assert f"[{request_id}]: created build" in stream.getvalue()


def test_outside_a_request_there_is_no_id() -> None:
    logger, stream = capture("json")
    logger.info("tick")
    assert "correlation_id" not in json.loads(stream.getvalue())


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_never_reach_a_line(log_format: str) -> None:
    logger, stream = capture(log_format)
    logger.info("Authorization: Bearer %s", JWT)
    logger.info("token %s for admin", JWT)
    logger.info("connecting to amqp://albs:s3cr3t-pw@rabbitmq:5672/")
    logger.info("settings password=hunter2xyz client_secret: 'gh-secret-value'")
    try:
        raise RuntimeError(f"login failed with {JWT}")
    except RuntimeError:
        logger.exception("failed")
    output = stream.getvalue()
    for secret in (JWT, "s3cr3t-pw", "hunter2xyz", "gh-secret-value", "c2lnbmF0dXJl"):
        assert secret not in output
    assert "amqp://albs:***@rabbitmq:5672/" in output


def test_redact_leaves_ordinary_text_alone() -> None:
    line = "build 7 of platform AlmaLinux-8 has 4 tasks; tokens revoked for user 3"
    assert redact(line) == line


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("0123456789abcdef", True),
        ("my-trace.id:42_x", True),
        ("short", False),
        ("x" * 65, False),
        ("bad id with spaces", False),
        ("line\nbreak-injected", False),
        (None, False),
    ],
)
def test_only_a_well_formed_request_id_is_taken(given: str | None, kept: bool) -> None:
    accepted = correlation.accept(given)
    assert (accepted == given) is kept
    assert 8 <= len(accepted) <= correlation.MAX_LENGTH


def test_message_headers_give_the_id_back() -> None:
    assert correlation.from_headers({"x-correlation-id": b"abcdef0123"}) == "abcdef0123"
    assert correlation.from_headers({"x-correlation-id": "no good"}) is None
    assert correlation.from_headers(None) is None


def test_handler_outcomes_and_quiet_handlers() -> None:
    assert outcome_of(RpcReply.success(None)) == "ok"
    assert outcome_of(RpcReply.failure(404, "no such build")) == "rejected"
    assert outcome_of(RpcReply.failure(503, "down")) == "error"
    assert outcome_of(None) == "ok"
    assert handler_label("test-1.rpc.build.create", "test-1") == "rpc.build.create"
    assert is_quiet("rpc.build_node.get_task")
    assert is_quiet("scheduler.build_node.pinged")
    assert not is_quiet("artifacts.build.created")


def test_access_lines_of_node_polling_are_debug() -> None:
    assert access_level("POST", "/api/v1/builds/", 200) == logging.INFO
    assert access_level("POST", "/api/v1/build_node/get_task", 200) == logging.DEBUG
    assert access_level("GET", "/api/v1/builds/{build_id}/", 200) == logging.DEBUG
    assert access_level("GET", "/api/v1/builds/", 500) == logging.WARNING
