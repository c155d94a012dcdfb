"""Distributions: where finished builds are published (REFERENCE §3 rows 9-12, §5.7)."""

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from shared.contracts.base import WireModel
from shared.contracts.bounds import PLATFORMS_MAX, DbId, Name
from shared.contracts.messages import Actor, Event, RpcSpec

# The name becomes part of Pulp repository names and of content URLs.
DISTRIBUTION_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
DISTRIBUTION_NAME_MAX = 100
# Creating, adding and removing wait on Pulp (one task per repository): far beyond an
# ordinary RPC's timeout on a busy Pulp, so the gateway waits this long for them.
DISTRIBUTION_RPC_TIMEOUT_SECONDS = 180.0


def _distribution_name(value: str) -> str:
    if not DISTRIBUTION_NAME_PATTERN.match(value):
        raise ValueError(
            "must start with a letter or digit and contain only letters, digits and . _ + -"
        )
    return value


DistributionName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=DISTRIBUTION_NAME_MAX),
    AfterValidator(_distribution_name),
]


class DistributionCreate(WireModel):
    name: DistributionName
    platforms: list[Name] = Field(min_length=1, max_length=PLATFORMS_MAX)


class DistributionOut(WireModel):
    id: int
    name: str


class DistributionsPage(WireModel):
    distributions: list[DistributionOut]
    total_distributions: int
    current_page: int


class DistributionChangeReply(WireModel):
    success: bool


class CreateDistribution(WireModel):
    actor: Actor
    distribution: DistributionCreate


class ChangeDistribution(WireModel):
    """Add a build's packages to a distribution, or remove them."""

    actor: Actor
    build_id: DbId
    distribution: str


class DistributionChanged(Event):
    """A build's packages were added to a distribution or removed from it."""

    routing_key = "distribution.changed"
    distribution_id: int
    distribution: str
    build_id: int
    change: Literal["added", "removed"]


CREATE_DISTRIBUTION = RpcSpec(
    "distribution.create",
    CreateDistribution,
    DistributionOut,
    timeout_seconds=DISTRIBUTION_RPC_TIMEOUT_SECONDS,
)
ADD_TO_DISTRIBUTION = RpcSpec(
    "distribution.add_build",
    ChangeDistribution,
    DistributionChangeReply,
    timeout_seconds=DISTRIBUTION_RPC_TIMEOUT_SECONDS,
)
REMOVE_FROM_DISTRIBUTION = RpcSpec(
    "distribution.remove_build",
    ChangeDistribution,
    DistributionChangeReply,
    timeout_seconds=DISTRIBUTION_RPC_TIMEOUT_SECONDS,
)
