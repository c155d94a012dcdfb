"""What fits where the value is stored: integer ranges, string lengths, clean text and JSON.

Every id column is a PostgreSQL `integer`; text columns are `text`, so the lengths here are
ours, chosen above anything a real client sends (docs/decisions/0011-request-path.md).
PostgreSQL rejects NUL in text and JSONB, and UTF-8 cannot carry a lone surrogate: both
are refused here, with the field's name, instead of failing later in the database.
"""

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictBool, StringConstraints

INT32_MAX = 2**31 - 1

URL_MAX = 2048
REF_MAX = 1024
NAME_MAX = 200
ARCH_MAX = 32
HREF_MAX = 1024
SHORT_TEXT_MAX = 200
LIST_MAX = 1000
ARCHES_MAX = 32
PLATFORMS_MAX = 32
JSON_MAX_DEPTH = 16
JSON_MAX_NODES = 10_000

ARCH_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")


def clean_text(value: str) -> str:
    """No NUL byte and nothing UTF-8 cannot encode (a lone surrogate from `\\ud800`)."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogate)") from None
    return value


def printable(value: str) -> str:
    """A name people read: no control characters, no leading or trailing space."""
    clean_text(value)
    if not value.isprintable() or value != value.strip():
        raise ValueError("must be printable, without control characters or outer spaces")
    return value


def clean_json(value: Any) -> Any:
    """JSON that PostgreSQL's JSONB stores: clean strings, finite numbers, bounded size."""
    nodes = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > JSON_MAX_NODES or depth > JSON_MAX_DEPTH:
            raise ValueError(
                f"is too large (at most {JSON_MAX_NODES} values, {JSON_MAX_DEPTH} levels deep)"
            )
        if isinstance(item, str):
            clean_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("must not contain NaN or Infinity")
        elif isinstance(item, dict):
            for key, child in item.items():
                clean_text(str(key))
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return value


def _arch(value: str) -> str:
    if not ARCH_PATTERN.match(value):
        raise ValueError("must be an architecture name such as x86_64 (letters, digits, _)")
    return value


DbId = Annotated[int, Field(ge=1, le=INT32_MAX)]
PageNumber = Annotated[int, Field(ge=1, le=INT32_MAX)]
Text = Annotated[str, StringConstraints(max_length=SHORT_TEXT_MAX), AfterValidator(clean_text)]
Url = Annotated[
    str, StringConstraints(min_length=1, max_length=URL_MAX), AfterValidator(clean_text)
]
GitRef = Annotated[str, StringConstraints(max_length=REF_MAX), AfterValidator(clean_text)]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=NAME_MAX), AfterValidator(printable)
]
Arch = Annotated[str, StringConstraints(min_length=1, max_length=ARCH_MAX), AfterValidator(_arch)]
Href = Annotated[
    str, StringConstraints(min_length=1, max_length=HREF_MAX), AfterValidator(clean_text)
]
JsonObject = Annotated[dict[str, Any], AfterValidator(clean_json)]
Flag = StrictBool


def id_in_range(value: int) -> bool:
    """Whether `value` can be a row id at all; ids outside are unknown, never an error."""
    return 1 <= value <= INT32_MAX
