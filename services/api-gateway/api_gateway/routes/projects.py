"""/api/v1/projects/alma: the Gitea projects the bridge keeps in Redis (REFERENCE §5.9)."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from redis.exceptions import RedisError

from api_gateway.deps import RedisDep
from api_gateway.params import SearchText
from api_gateway.policy import People
from api_gateway.responses import COMMON, errors
from shared.contracts.bounds import INT32_MAX
from shared.contracts.projects import Project
from shared.errors import Unavailable
from shared.projects_cache import ProjectCache

router = APIRouter(prefix="/api/v1/projects", tags=["projects"], responses=errors(*COMMON))

DEFAULT_PAGE_SIZE = 100
# The Gitea organization of module repositories (the original's `modules_gitea_cache`).
MODULES_ORG = "modules"

NameQuery = Annotated[SearchText | None, Query(description="part of the project name")]
PageQuery = Annotated[int | None, Query(ge=1, le=INT32_MAX)]
PageSizeQuery = Annotated[int | None, Query(ge=1, le=1000)]


@router.get("/alma", response_model=list[Project])
async def list_alma_projects(
    _: People,
    request: Request,
    redis: RedisDep,
    name: NameQuery = None,
    page: PageQuery = None,
    page_size: PageSizeQuery = None,
) -> list[Project]:
    """Sorted by name; every project unless `page` or `page_size` asks for one page."""
    cache = ProjectCache(redis, request.app.state.settings.redis_prefix)
    return await _list(cache, name, page, page_size, org=None)


@router.get("/alma/modularity", response_model=list[Project])
async def list_alma_modules(
    _: People,
    request: Request,
    redis: RedisDep,
    name: NameQuery = None,
    page: PageQuery = None,
    page_size: PageSizeQuery = None,
) -> list[Project]:
    """The module repositories (Gitea organization `modules`), as `/alma` lists projects."""
    cache = ProjectCache(redis, request.app.state.settings.redis_prefix)
    return await _list(cache, name, page, page_size, org=MODULES_ORG)


async def _list(
    cache: ProjectCache, name: str | None, page: int | None, page_size: int | None, org: str | None
) -> list[Project]:
    paginated = page is not None or page_size is not None
    size = page_size or DEFAULT_PAGE_SIZE
    try:
        return await cache.list_projects(
            name_contains=name,
            org=org,
            offset=((page or 1) - 1) * size if paginated else 0,
            limit=size if paginated else None,
        )
    except RedisError as exc:
        raise Unavailable(f"The project cache is unavailable: {type(exc).__name__}") from None
