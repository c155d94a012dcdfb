"""Turning a build request into tasks (REFERENCE §5.1), one transaction."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler import mock_options
from shared.contracts.builds import (
    BuildCreate,
    BuildCreated,
    BuildCreatePlatform,
    BuildOut,
    PlannedPlatform,
    PlannedTask,
)
from shared.contracts.messages import Actor
from shared.db.models import Build, BuildTask, BuildTaskRef, BuildTaskStatus, Platform
from shared.db.queries.builds import get_build
from shared.errors import Invalid, NotFound
from shared.messaging.outbox import add_event


async def create_build(session: AsyncSession, actor: Actor, request: BuildCreate) -> BuildOut:
    """Plan the build and answer it as the API shows it."""
    build = await plan_build(session, actor, request)
    created = await get_build(session, build.id)
    assert created is not None
    return created


async def plan_build(session: AsyncSession, actor: Actor, request: BuildCreate) -> Build:
    platforms = await _platforms(session, request.platforms)
    linked = await _linked_builds(session, request.linked_builds or [])
    mock_options.validate(request.mock_options or {})
    build = Build(
        user_id=actor.user_id, mock_options=request.mock_options, linked_builds=linked, tasks=[]
    )
    session.add(build)
    await session.flush()
    tasks = await _plan_tasks(session, build, request, platforms)
    names = {p.id: p.name for p in platforms}
    await add_event(
        session,
        BuildCreated(
            build_id=build.id,
            platforms=[
                PlannedPlatform(platform_id=p.id, name=p.name, arch_list=list(wanted.arch_list))
                for wanted, p in zip(request.platforms, platforms, strict=True)
            ],
            tasks=[
                PlannedTask(task_id=t.id, platform=names[t.platform_id], arch=t.arch) for t in tasks
            ],
        ),
    )
    return build


async def _platforms(session: AsyncSession, wanted: list[BuildCreatePlatform]) -> list[Platform]:
    names = [p.name for p in wanted]
    if len(set(names)) != len(names):
        raise Invalid("Each platform may be listed once per build.")
    found = {
        p.name: p for p in await session.scalars(select(Platform).where(Platform.name.in_(names)))
    }
    missing = [name for name in names if name not in found]
    if missing:
        raise NotFound(f"Unknown platform(s): {', '.join(missing)}")
    for request in wanted:
        platform = found[request.name]
        unknown = [arch for arch in request.arch_list if arch not in platform.arch_list]
        if unknown:
            raise Invalid(
                f"Platform {platform.name} does not build {', '.join(unknown)}; "
                f"its arches are {', '.join(platform.arch_list)}"
            )
        if len(set(request.arch_list)) != len(request.arch_list):
            raise Invalid(f"An arch is listed twice for platform {platform.name}.")
    return [found[name] for name in names]


async def _linked_builds(session: AsyncSession, ids: list[int]) -> list[Build]:
    found = {b.id: b for b in await session.scalars(select(Build).where(Build.id.in_(ids)))}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise NotFound(f"Unknown linked build(s): {', '.join(missing)}")
    return [found[i] for i in dict.fromkeys(ids)]


async def _plan_tasks(
    session: AsyncSession, build: Build, request: BuildCreate, platforms: list[Platform]
) -> list[BuildTask]:
    """One task per ref x platform x arch, created in (index, platform, arch) order.

    A task waits for (a) the same platform+arch task of the previous ref and (b) every
    earlier arch of the same platform and ref, as the reference does.
    """
    tasks: list[BuildTask] = []
    previous_ref: dict[tuple[int, str], BuildTask] = {}
    for index, wanted_ref in enumerate(request.tasks):
        ref = BuildTaskRef(
            build_id=build.id,
            url=wanted_ref.url,
            git_ref=wanted_ref.git_ref,
            ref_type=wanted_ref.ref_type,
            is_module=wanted_ref.is_module,
        )
        for wanted, platform in zip(request.platforms, platforms, strict=True):
            earlier_arches: list[BuildTask] = []
            for arch in wanted.arch_list:
                task = BuildTask(
                    build_id=build.id,
                    platform_id=platform.id,
                    ref=ref,
                    status=BuildTaskStatus.IDLE,
                    index=index,
                    arch=arch,
                )
                before = previous_ref.get((platform.id, arch))
                task.dependencies = [*earlier_arches, *([before] if before else [])]
                session.add(task)
                earlier_arches.append(task)
                previous_ref[(platform.id, arch)] = task
                tasks.append(task)
    await session.flush()
    return tasks
