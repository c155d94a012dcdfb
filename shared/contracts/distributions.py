"""Distributions: where finished builds are published (REFERENCE §3 rows 9-12, §5.7)."""

from pydantic import Field

from shared.contracts.base import WireModel


class DistributionCreate(WireModel):
    name: str = Field(min_length=1)
    platforms: list[str]


class DistributionOut(WireModel):
    id: int
    name: str


class DistributionChangeReply(WireModel):
    success: bool
