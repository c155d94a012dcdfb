"""Checking a build's mock options and merging them into a platform's node config."""

import copy
from typing import Any

from shared.errors import Invalid

MOCK_KEYS = ("module_enable", "target_arch")
LIST_KEYS = ("yum_exclude", "with", "without")


def validate(options: dict[str, Any]) -> None:
    """Refuse at submission what the merge could not apply (the reference crashed in get_task)."""
    for key, value in options.items():
        if key in MOCK_KEYS:
            continue
        if key in LIST_KEYS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise Invalid(f"mock_options.{key} must be a list of strings")
        elif not isinstance(value, dict):
            raise Invalid(
                f"mock_options.{key} must be an object of rpm macro definitions "
                "(known keys: module_enable, target_arch, yum_exclude, with, without, definitions)"
            )


def merge(platform_data: dict[str, Any], options: dict[str, Any] | None) -> dict[str, Any]:
    """The platform's data with the build's mock options applied; the stored data is untouched."""
    data = copy.deepcopy(platform_data)
    for section in ("mock", "yum", "definitions"):
        if not isinstance(data.get(section), dict):
            data[section] = {}
    for key, value in (options or {}).items():
        if key in MOCK_KEYS:
            data["mock"][key] = value
        elif key == "yum_exclude":
            existing = str(data["yum"].get("exclude", "")).split()
            data["yum"]["exclude"] = " ".join([*existing, *value])
        elif key in ("with", "without"):
            for item in value:
                data["definitions"][f"_{key}_{item}"] = f"--{key}-{item}"
        elif isinstance(value, dict):
            data["definitions"].update(value)
    return data
