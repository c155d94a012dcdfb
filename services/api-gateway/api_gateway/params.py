"""Path and query parameters bounded by what stores them (docs/decisions/0011-request-path.md).

An id in a path that no row can have (beyond PostgreSQL's integer) names nothing: 404, as
for any unknown id. Query numbers and strings out of bounds are 422.
"""

from typing import Annotated

from fastapi import Depends, Path, Query
from pydantic import AfterValidator

from shared.contracts.bounds import INT32_MAX, SHORT_TEXT_MAX, clean_text, id_in_range
from shared.contracts.distributions import DISTRIBUTION_NAME_MAX, DISTRIBUTION_NAME_PATTERN
from shared.errors import NotFound


async def _build_id(build_id: Annotated[int, Path()]) -> int:
    if not id_in_range(build_id):
        raise NotFound(f"Build with build_id={build_id} is not found")
    return build_id


async def _platform_id(platform_id: Annotated[int, Path()]) -> int:
    if not id_in_range(platform_id):
        raise NotFound(f"Platform with id={platform_id} is not found")
    return platform_id


async def _user_id(user_id: Annotated[int, Path()]) -> int:
    if not id_in_range(user_id):
        raise NotFound(f'User "{user_id}" is not found')
    return user_id


async def _sign_key_id(sign_key_id: Annotated[int, Path()]) -> int:
    if not id_in_range(sign_key_id):
        raise NotFound(f"Sign key {sign_key_id} is not found")
    return sign_key_id


async def _sign_task_id(sign_task_id: Annotated[int, Path()]) -> int:
    if not id_in_range(sign_task_id):
        raise NotFound(f"Sign task {sign_task_id} is not found")
    return sign_task_id


async def _distribution_name(distribution: Annotated[str, Path()]) -> str:
    if len(distribution) > DISTRIBUTION_NAME_MAX or not DISTRIBUTION_NAME_PATTERN.match(
        distribution
    ):
        raise NotFound("Distribution is not found (no distribution can have that name)")
    return distribution


BuildId = Annotated[int, Depends(_build_id)]
DistributionName = Annotated[str, Depends(_distribution_name)]
PlatformId = Annotated[int, Depends(_platform_id)]
UserId = Annotated[int, Depends(_user_id)]
SignKeyId = Annotated[int, Depends(_sign_key_id)]
SignTaskId = Annotated[int, Depends(_sign_task_id)]

Offset = Annotated[int, Query(ge=0, le=INT32_MAX)]
SearchText = Annotated[str, Query(max_length=SHORT_TEXT_MAX), AfterValidator(clean_text)]
QueryId = Annotated[int, Query(ge=1, le=INT32_MAX)]
