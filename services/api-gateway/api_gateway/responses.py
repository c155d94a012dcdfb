"""The error answers each route can give, declared in the OpenAPI document (`responses=`).

The bodies are what api_gateway/errors.py and FastAPI's own handlers send: `{"detail": str}`
for every error, plus `error_id` on a 500. A 422 names the fields at fault (a list) when
the request does not match its schema, and is a sentence when a rule of the service refused
it (a platform listed twice, no search parameter given).
"""

from typing import Any

from pydantic import BaseModel


class ErrorOut(BaseModel):
    detail: str


class InternalErrorOut(ErrorOut):
    error_id: str


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class InvalidOut(BaseModel):
    detail: list[ValidationIssue] | str


DESCRIPTIONS = {
    400: "A body that cannot be parsed, or refused by the service (e.g. a bad GitHub code)",
    403: "No valid token, a revoked one, or not allowed for this caller",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "The request body is larger than the server accepts",
    422: "Invalid request",
    500: "Unexpected error; the error id is in the server's log",
    502: "An upstream service answered something unusable",
    503: "A backing service or server is unavailable; try again shortly",
}
MODELS: dict[int, type[BaseModel]] = {422: InvalidOut, 500: InternalErrorOut}

# Every route that reads a token or a table, or sends a message.
COMMON = (403, 422, 500, 503)
# Routes that read a request body: one that is not text (not UTF-8) is 400, a huge one 413.
BODY = (400, 413)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route or router for these error statuses."""
    return {
        status: {"model": MODELS.get(status, ErrorOut), "description": DESCRIPTIONS[status]}
        for status in statuses
    }
