"""Every setting the code reads, found in the settings classes themselves.

Each service keeps its settings in `services/<service>/<package>/settings.py` and the
shared ones are in `shared/settings.py`; a setting added there is known here without
touching this file.
"""

import importlib
import inspect
from pathlib import Path

from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]


def settings_modules() -> list[str]:
    packages = sorted(p.parent.name for p in ROOT.glob("services/*/*/settings.py"))
    return ["shared.settings", *(f"{package}.settings" for package in packages)]


def settings_classes() -> list[type[BaseSettings]]:
    found: dict[str, type[BaseSettings]] = {}
    for name in settings_modules():
        module = importlib.import_module(name)
        for _, member in inspect.getmembers(module, inspect.isclass):
            if issubclass(member, BaseSettings) and member is not BaseSettings:
                found[f"{member.__module__}.{member.__qualname__}"] = member
    return list(found.values())


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (prefix + field name, or alias)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias or field.alias
        names.add(alias.upper() if isinstance(alias, str) else f"{prefix}{field_name}".upper())
    return names


def all_env_names() -> dict[str, set[str]]:
    """Variable name -> the classes that read it."""
    owners: dict[str, set[str]] = {}
    for cls in settings_classes():
        for name in env_names(cls):
            owners.setdefault(name, set()).add(cls.__name__)
    return owners
