"""Distributions through the API as the frontend calls it, on the real Pulp.

gateway -> RPC -> the artifacts service (in-process) -> Pulp and PostgreSQL; packages are
read back through Pulp's content app, as dnf and the frontend's links read them.
"""

import httpx
import pytest
from sqlalchemy import select, update

from shared.db.models import BuildTask, Distribution
from shared.db.session import SessionFactory, unit_of_work
from tests.support.artifacts import EventLog, served_packages
from tests.support.distributions import (
    PLATFORM,
    URL,
    FileABuild,
    FiledBuild,
    PulpLeftovers,
    contents,
    create,
    distribution_repos,
    distro_name,
    ensure_platform,
    expected,
    links,
    merged,
    report,
)
from tests.support.events import EventBus
from tests.support.pulp_node import wait_for_task
from tests.support.rpms import RpmFactory
from tests.support.stack import TokenMaker, bearer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.pulp, pytest.mark.usefixtures("artifacts_service")]

PULP_SECONDS = 180.0


async def test_create_list_and_refusals(
    api: httpx.AsyncClient,
    make_token: TokenMaker,
    sessions: SessionFactory,
    pulp_http: httpx.AsyncClient,
    run_id: str,
    pulp_leftovers: PulpLeftovers,
) -> None:
    await ensure_platform(sessions)
    admin = bearer(await make_token("distro-admin", admin=True))
    name = distro_name(run_id, "create", pulp_leftovers)

    created = await create(api, admin, name)
    assert created == {"id": created["id"], "name": name}
    repos = await distribution_repos(sessions, name)
    arches = ["i686", "x86_64", "ppc64le"]  # the test platform's arch list
    assert sorted((r.name, r.arch, r.debug, r.type) for r in repos.values()) == sorted(
        [(f"{name}-{PLATFORM}-src-dr", "src", False, "rpm")]
        + [(f"{name}-{PLATFORM}-{a}-dr", a, False, "rpm") for a in arches]
        + [(f"{name}-{PLATFORM}-{a}-debug-dr", a, True, "rpm") for a in arches]
    )
    for repo in repos.values():
        assert repo.url.endswith(f"/pulp/content/builds/{repo.name}/")
        metadata = await pulp_http.get(f"{repo.url}repodata/repomd.xml")  # published at once
        assert metadata.status_code == 200, repo.name

    listed = await api.get(URL, headers=admin)
    assert created in listed.json()
    page = (await api.get(URL, params={"pageNumber": 1}, headers=admin)).json()
    assert page["current_page"] == 1
    assert page["total_distributions"] >= 1

    again = await api.post(URL, json={"name": name, "platforms": [PLATFORM]}, headers=admin)
    assert (again.status_code, again.json()) == (
        409,
        {"detail": f"Distribution '{name}' already exists."},
    )
    unknown = await api.post(
        URL, json={"name": f"{name}-x", "platforms": [PLATFORM, "NoSuch-9"]}, headers=admin
    )
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"detail": "Platform 'NoSuch-9' is not found."},
    )
    user = bearer(await make_token("distro-user"))
    refused = await api.post(URL, json={"name": f"{name}-y", "platforms": [PLATFORM]}, headers=user)
    assert refused.status_code == 403
    bad = await api.post(URL, json={"name": "a b/c", "platforms": [PLATFORM]}, headers=admin)
    assert bad.status_code == 422
    async with sessions() as session:
        names = set(await session.scalars(select(Distribution.name)))
    assert {f"{name}-x", f"{name}-y"}.isdisjoint(names)


async def test_add_download_and_remove_touch_only_that_build_and_distribution(
    api: httpx.AsyncClient,
    make_token: TokenMaker,
    sessions: SessionFactory,
    pulp_http: httpx.AsyncClient,
    filed_pair: tuple[FiledBuild, FiledBuild],
    run_id: str,
    pulp_leftovers: PulpLeftovers,
) -> None:
    first, second = filed_pair
    admin = bearer(await make_token("distro-admin", admin=True))
    owner = bearer(await make_token("distro-owner"))
    stranger = bearer(await make_token("distro-stranger"))
    d1 = distro_name(run_id, "one", pulp_leftovers)
    d2 = distro_name(run_id, "two", pulp_leftovers)
    await create(api, admin, d1)
    await create(api, admin, d2)

    for distro, build in ((d1, first), (d2, first), (d1, second)):
        added = await api.post(f"{URL}add/{build.build_id}/{distro}/", headers=owner)
        assert (added.status_code, added.json()) == (200, {"success": True}), added.text
    repos1, repos2 = await distribution_repos(sessions, d1), await distribution_repos(sessions, d2)
    assert await contents(pulp_http, repos1) == merged(expected(d1, first), expected(d1, second))
    assert await contents(pulp_http, repos2) == expected(d2, first)

    # Downloaded through the content app, as the frontend's links and dnf do.
    rpm = first.packages.binary
    url = f"{repos1[f'{d1}-{PLATFORM}-x86_64-dr'].url}Packages/{rpm.name[0]}/{rpm.name}"
    assert "/pulp/content/" in url
    downloaded = await eventually(lambda: _download(url), timeout=60)
    assert downloaded == rpm.read_bytes()

    twice = await api.post(f"{URL}add/{first.build_id}/{d1}/", headers=owner)
    assert (twice.status_code, twice.json()) == (
        409,
        {
            "detail": f"Packages of build {first.build_id} have already been added to {d1} distribution"
        },
    )
    for path, status in (
        (f"add/{first.build_id}/{d1}-nosuch/", 404),
        (f"add/2000000000/{d1}/", 404),
        (f"remove/{first.build_id}/{d1}-nosuch/", 404),
        (f"add/{first.build_id}/..%2Fetc/", 404),
    ):
        answer = await api.post(f"{URL}{path}", headers=owner)
        assert answer.status_code == status, (path, answer.text)
    for path in (f"add/{first.build_id}/{d1}/", f"remove/{first.build_id}/{d1}/"):
        assert (await api.post(f"{URL}{path}", headers=stranger)).status_code == 403

    removed = await api.post(f"{URL}remove/{first.build_id}/{d1}/", headers=owner)
    assert (removed.status_code, removed.json()) == (200, {"success": True}), removed.text
    assert await contents(pulp_http, repos1) == expected(d1, second)
    assert await contents(pulp_http, repos2) == expected(d2, first)
    assert await links(sessions, d1, d2) == {(d1, second.build_id), (d2, first.build_id)}
    # What dnf sees: the metadata of d1 lists only the second build's packages now. (Pulp
    # still answers the old file's URL during its grace period for superseded publications,
    # DISTRIBUTED_PUBLICATION_RETENTION_PERIOD, so clients mid-download do not break.)
    x86 = f"-{PLATFORM}-x86_64-dr"
    kept = second.packages
    assert await served_packages(repos1[d1 + x86].url) == {
        p.name: p.read_bytes() for p in (kept.binary, kept.noarch)
    }
    assert set(await served_packages(repos2[d2 + x86].url)) == {
        rpm.name,
        first.packages.noarch.name,
    }

    again = await api.post(f"{URL}remove/{first.build_id}/{d1}/", headers=admin)
    assert (again.status_code, again.json()) == (
        409,
        {
            "detail": f"Packages of build {first.build_id} cannot be removed from {d1} "
            "distribution as they are not added there"
        },
    )


async def _download(url: str) -> bytes | None:
    async with httpx.AsyncClient(timeout=30, follow_redirects=True) as client:
        answer = await client.get(url)
    return answer.content if answer.status_code == 200 else None


async def test_a_restarted_task_brings_its_new_packages_into_the_distribution(
    api: httpx.AsyncClient,
    make_token: TokenMaker,
    sessions: SessionFactory,
    module_bus: EventBus,
    event_log: EventLog,
    pulp_http: httpx.AsyncClient,
    rpms: RpmFactory,
    file_a_build: FileABuild,
    run_id: str,
    pulp_leftovers: PulpLeftovers,
) -> None:
    build = await file_a_build("albs-distro-again")
    admin = bearer(await make_token("distro-admin", admin=True))
    distro = distro_name(run_id, "again", pulp_leftovers)
    await create(api, admin, distro)
    added = await api.post(f"{URL}add/{build.build_id}/{distro}/", headers=admin)
    assert added.status_code == 200, added.text

    # The task is run again (a restart) and its second attempt completes with new packages.
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(BuildTask).where(BuildTask.id == build.task_id).values(attempt=2)
        )
    newer = rpms(name="albs-distro-again", version="1.1", arch="x86_64")
    await report(module_bus, event_log, pulp_http, build.build_id, build.task_id, 2, newer)

    repos = await distribution_repos(sessions, distro)
    wanted = merged(expected(distro, build), expected(distro, FiledBuild(0, 0, newer)))

    async def arrived() -> bool:
        return await contents(pulp_http, repos) == wanted

    await eventually(arrived, timeout=PULP_SECONDS, every=0.5)


async def test_a_pulp_failure_midway_is_undone_and_answered_503(
    api: httpx.AsyncClient,
    make_token: TokenMaker,
    sessions: SessionFactory,
    pulp_http: httpx.AsyncClient,
    filed_pair: tuple[FiledBuild, FiledBuild],
    run_id: str,
    pulp_leftovers: PulpLeftovers,
) -> None:
    build, _ = filed_pair  # adding it fails and is undone: the build stays as it was
    admin = bearer(await make_token("distro-admin", admin=True))
    distro = distro_name(run_id, "broken", pulp_leftovers)
    await create(api, admin, distro)
    repos = await distribution_repos(sessions, distro)
    # One repository vanishes from Pulp behind the service's back: its modify fails for
    # good while the modifies of the other two succeed.
    vanished = repos.pop(f"{distro}-{PLATFORM}-x86_64-debug-dr")
    deleting = await pulp_http.delete(str(vanished.pulp_href))
    await wait_for_task(pulp_http, deleting.raise_for_status().json()["task"])

    answer = await api.post(f"{URL}add/{build.build_id}/{distro}/", headers=admin)

    assert answer.status_code == 503, answer.text
    assert "nothing was changed" in answer.json()["detail"]
    assert str(vanished.pulp_href) in answer.json()["detail"]
    assert await links(sessions, distro) == set()
    assert await contents(pulp_http, repos) == {}  # the other repositories were undone
