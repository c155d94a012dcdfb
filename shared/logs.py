"""One log format for every process: plain text (default) or JSON lines, both carrying the
correlation id of the request a line belongs to, and neither ever showing a secret."""

import json
import logging
import re
from datetime import UTC, datetime
from typing import Literal

from shared import correlation

FORMAT = "%(asctime)s %(levelname)s %(name)s%(correlation)s: %(message)s"
LogFormat = Literal["text", "json"]

# Tokens, passwords in URLs and key=value pairs: whatever a library or an error message
# puts in a line, these never reach a log.
_SECRETS = (
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "***"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@"), r"\1***@"),
    (
        re.compile(
            r"(?i)\b((?:password|passwd|secret|token|client_secret|jwt_token)[\"']?\s*[=:]\s*"
            r"[\"']?)[^\s\"',&}]+"
        ),
        r"\1***",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class CorrelationFilter(logging.Filter):
    """Adds `correlation_id` (None outside a request) and its text form to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        correlation_id = getattr(record, "correlation_id", None) or correlation.current()
        record.correlation_id = correlation_id
        record.correlation = f" [{correlation_id}]" if correlation_id else ""
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        correlation_id = getattr(record, "correlation_id", None)
        if correlation_id:
            entry["correlation_id"] = correlation_id
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter(FORMAT)


def setup_logging(level: str, log_format: LogFormat = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    # On the handler, so records of every logger (propagated ones too) get the fields.
    handler.addFilter(CorrelationFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # Connection chatter from these libraries is noise at INFO.
    for noisy in ("aiormq", "aio_pika", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
