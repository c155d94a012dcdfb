"""Platforms: what a build targets (REFERENCE §3 rows 13-15, §5.8)."""

from typing import Any, Literal

from pydantic import Field

from shared.contracts.base import WireModel
from shared.contracts.bounds import ARCHES_MAX, LIST_MAX, Arch, Flag, JsonObject, Name, Url
from shared.contracts.messages import Actor, RpcSpec

PlatformType = Literal["rpm", "deb"]


class PlatformRepo(WireModel):
    name: Name
    arch: Arch
    url: Url
    type: Name
    production: Flag = False


class PlatformCreate(WireModel):
    name: Name
    type: PlatformType
    distr_type: Name
    distr_version: Name
    test_dist_name: Name
    arch_list: list[Arch] = Field(min_length=1, max_length=ARCHES_MAX)
    repos: list[PlatformRepo] = Field(max_length=LIST_MAX)
    data: JsonObject


class PlatformModify(WireModel):
    """Names the platform to change; every other field left out stays as it is."""

    name: Name
    type: PlatformType | None = None
    distr_type: Name | None = None
    distr_version: Name | None = None
    arch_list: list[Arch] | None = Field(default=None, min_length=1, max_length=ARCHES_MAX)
    repos: list[PlatformRepo] | None = Field(default=None, max_length=LIST_MAX)
    data: JsonObject | None = None


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
