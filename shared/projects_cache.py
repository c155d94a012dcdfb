"""The project cache in Redis: one hash per Gitea repository, changed only by atomic scripts.

`{prefix}:projects:{org}/{repo}` holds `name`, `full_name`, `clone_url`, `updated_at` (what the
last full refresh saw), `rev` (a counter every write increments), `synced` (the revision the
last applied refresh started from), and one field per ref: `tag:<name>` / `branch:<name>` whose
value is the revision that last confirmed it, `deleted-tag:<name>` / `deleted-branch:<name>`
whose value is the revision a webhook deleted it at. `{prefix}:project-index` is the set of
full names.

A webhook changes one ref. A refresh replaces the ref lists with what Gitea answered, but its
answer may be older than a webhook applied meanwhile; the scripts therefore never let a
refresh remove a ref confirmed after it started, nor bring back a ref deleted after it
started, and drop a refresh older than one already applied. So no writer loses another's
update, whatever the interleaving (REFERENCE §11.26).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from shared.contracts.projects import Project


class RefKind(StrEnum):
    TAG = "tag"
    BRANCH = "branch"


@dataclass(frozen=True)
class ProjectMeta:
    full_name: str
    name: str
    clone_url: str


@dataclass(frozen=True)
class CachedState:
    revision: int
    updated_at: str | None


APPLY_REF_CHANGE = """
local rev = redis.call('HINCRBY', KEYS[1], 'rev', 1)
redis.call('HSET', KEYS[1], 'full_name', ARGV[1], 'name', ARGV[2], 'clone_url', ARGV[3])
local live, dead = ARGV[4] .. ':' .. ARGV[5], 'deleted-' .. ARGV[4] .. ':' .. ARGV[5]
if ARGV[6] == '1' then
  redis.call('HDEL', KEYS[1], live)
  redis.call('HSET', KEYS[1], dead, rev)
else
  redis.call('HSET', KEYS[1], live, rev)
  redis.call('HDEL', KEYS[1], dead)
end
redis.call('SADD', KEYS[2], ARGV[1])
return rev
"""

SYNC_PROJECT = """
local since = tonumber(ARGV[5])
local synced = tonumber(redis.call('HGET', KEYS[1], 'synced') or '-1')
if since < synced then return -1 end
local rev = redis.call('HINCRBY', KEYS[1], 'rev', 1)
local fetched = {}
local tag_count = tonumber(ARGV[6])
for i = 7, #ARGV do
  local kind = (i < 7 + tag_count) and 'tag:' or 'branch:'
  fetched[kind .. ARGV[i]] = true
end
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local field, value = fields[i], tonumber(fields[i + 1])
  if string.sub(field, 1, 4) == 'tag:' or string.sub(field, 1, 7) == 'branch:' then
    if not fetched[field] and value <= since then redis.call('HDEL', KEYS[1], field) end
  elseif string.sub(field, 1, 8) == 'deleted-' then
    if value > since then
      fetched[string.sub(field, 9)] = nil
    else
      redis.call('HDEL', KEYS[1], field)
    end
  end
end
for field in pairs(fetched) do redis.call('HSET', KEYS[1], field, rev) end
redis.call('HSET', KEYS[1], 'full_name', ARGV[1], 'name', ARGV[2], 'clone_url', ARGV[3],
           'updated_at', ARGV[4], 'synced', since)
redis.call('SADD', KEYS[2], ARGV[1])
return rev
"""

REMOVE_PROJECT = """
local rev = redis.call('HGET', KEYS[1], 'rev') or '0'
if rev ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ProjectCache:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._apply = redis.register_script(APPLY_REF_CHANGE)
        self._sync = redis.register_script(SYNC_PROJECT)
        self._remove = redis.register_script(REMOVE_PROJECT)

    @property
    def index_key(self) -> str:
        return f"{self._prefix}:project-index"

    def key(self, full_name: str) -> str:
        return f"{self._prefix}:projects:{full_name}"

    async def apply_ref_change(
        self, project: ProjectMeta, kind: RefKind, ref_name: str, *, deleted: bool
    ) -> int:
        """A webhook's change of one branch or tag; returns the project's new revision."""
        keys = [self.key(project.full_name), self.index_key]
        args = [project.full_name, project.name, project.clone_url, kind.value, ref_name]
        return int(await self._apply(keys=keys, args=[*args, "1" if deleted else "0"]))

    async def revision(self, full_name: str) -> int:
        """Read this before asking Gitea for a project's refs, and pass it to `sync_project`."""
        return int(await self._redis.hget(self.key(full_name), "rev") or 0)

    async def sync_project(
        self,
        project: ProjectMeta,
        *,
        updated_at: str,
        tags: Iterable[str],
        branches: Iterable[str],
        since: int,
    ) -> bool:
        """Store what Gitea answered after `since` was read; False when a newer answer won."""
        tag_list, branch_list = list(dict.fromkeys(tags)), list(dict.fromkeys(branches))
        keys = [self.key(project.full_name), self.index_key]
        args = [project.full_name, project.name, project.clone_url, updated_at, str(since)]
        result = await self._sync(keys=keys, args=[*args, len(tag_list), *tag_list, *branch_list])
        return int(result) >= 0

    async def remove_project(self, full_name: str, *, expected_revision: int) -> bool:
        """Remove a project Gitea no longer has, unless it changed since `expected_revision`."""
        keys = [self.key(full_name), self.index_key]
        return bool(await self._remove(keys=keys, args=[full_name, str(expected_revision)]))

    async def full_names(self) -> list[str]:
        return sorted(_text(member) for member in await self._redis.smembers(self.index_key))

    async def states(self, full_names: Sequence[str]) -> dict[str, CachedState]:
        """Revision and last refreshed `updated_at` of each named project that is cached."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for full_name in full_names:
                pipe.hmget(self.key(full_name), ["rev", "updated_at"])
            rows = await pipe.execute()
        states = {}
        for full_name, (rev, updated_at) in zip(full_names, rows, strict=True):
            if rev is not None:
                stamp = _text(updated_at) if updated_at is not None else None
                states[full_name] = CachedState(int(rev), stamp)
        return states

    async def get(self, full_name: str) -> Project | None:
        projects = await self._load([full_name])
        return projects[0] if projects else None

    async def list_projects(
        self,
        *,
        name_contains: str | None = None,
        org: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[Project]:
        """Projects sorted by name (then owner), optionally of one organization, filtered
        and paginated."""
        full_names = sorted(await self.full_names(), key=lambda n: (n.split("/", 1)[1], n))
        if org is not None:
            full_names = [n for n in full_names if n.split("/", 1)[0] == org]
        if name_contains:
            needle = name_contains.lower()
            full_names = [n for n in full_names if needle in n.split("/", 1)[1].lower()]
        end = None if limit is None else offset + limit
        return await self._load(full_names[offset:end])

    async def _load(self, full_names: Sequence[str]) -> list[Project]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for full_name in full_names:
                pipe.hgetall(self.key(full_name))
            rows = await pipe.execute()
        return [project for row in rows if (project := _project(row)) is not None]


def _project(row: dict[Any, Any]) -> Project | None:
    fields = {_text(name): _text(value) for name, value in row.items()}
    if "clone_url" not in fields:
        return None  # removed between reading the index and reading the project
    return Project(
        name=fields["name"],
        clone_url=fields["clone_url"],
        tags=_refs(fields, "tag:"),
        branches=_refs(fields, "branch:"),
    )


def _refs(fields: dict[str, str], prefix: str) -> list[str]:
    return sorted(name.removeprefix(prefix) for name in fields if name.startswith(prefix))
