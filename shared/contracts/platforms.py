"""Platforms: what a build targets (REFERENCE §3 rows 13-15, §5.8)."""

from typing import Any, Literal

from pydantic import Field

from shared.contracts.base import WireModel
from shared.contracts.messages import Actor, RpcSpec

PlatformType = Literal["rpm", "deb"]


class PlatformRepo(WireModel):
    name: str = Field(min_length=1)
    arch: str = Field(min_length=1)
    url: str = Field(min_length=1)
    type: str = Field(min_length=1)
    production: bool = False


class PlatformCreate(WireModel):
    name: str = Field(min_length=1, max_length=200)
    type: PlatformType
    distr_type: str
    distr_version: str
    test_dist_name: str
    arch_list: list[str] = Field(min_length=1)
    repos: list[PlatformRepo]
    data: dict[str, Any]


class PlatformModify(WireModel):
    """Names the platform to change; every other field left out stays as it is."""

    name: str = Field(min_length=1)
    type: PlatformType | None = None
    distr_type: str | None = None
    distr_version: str | None = None
    arch_list: list[str] | None = Field(default=None, min_length=1)
    repos: list[PlatformRepo] | None = None
    data: dict[str, Any] | None = None


class PlatformSummary(WireModel):
    id: int
    name: str
    arch_list: list[str]


class PlatformDetail(PlatformSummary):
    """Everything stored about a platform (additive to the reference's summary)."""

    type: PlatformType
    distr_type: str
    distr_version: str
    test_dist_name: str
    repos: list[PlatformRepo]
    data: dict[str, Any]


class CreatePlatform(WireModel):
    actor: Actor
    platform: PlatformCreate


class ModifyPlatform(WireModel):
    actor: Actor
    platform: PlatformModify


CREATE_PLATFORM = RpcSpec("platform.create", CreatePlatform, PlatformSummary)
MODIFY_PLATFORM = RpcSpec("platform.modify", ModifyPlatform, PlatformSummary)
