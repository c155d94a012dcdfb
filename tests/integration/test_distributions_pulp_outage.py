"""Pulp goes away while a build is being added to a distribution: the modifies are
retried, the add completes once Pulp is back, and database and Pulp agree.

The outage is the loopback TCP proxy of test_artifacts_pulp_outage.py between the
artifacts service and the shared local Pulp.
"""

import asyncio

import httpx
import pytest

from shared.db.session import SessionFactory
from tests.integration.test_artifacts_pulp_outage import (
    artifacts_behind_proxy,
    pulp_proxy,
    wait_for_traffic,
)
from tests.support.distributions import (
    URL,
    FileABuild,
    PulpLeftovers,
    contents,
    create,
    distribution_repos,
    distro_name,
    expected,
    links,
)
from tests.support.stack import TokenMaker, bearer
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.pulp, pytest.mark.usefixtures("artifacts_behind_proxy")]

__all__ = ["artifacts_behind_proxy", "pulp_proxy"]  # fixtures of this module too

OUTAGE_SECONDS = 4.0


async def test_adding_waits_out_a_pulp_outage_and_ends_consistent(
    api: httpx.AsyncClient,
    make_token: TokenMaker,
    sessions: SessionFactory,
    pulp_http: httpx.AsyncClient,
    pulp_proxy: TcpProxy,
    file_a_build: FileABuild,
    run_id: str,
    pulp_leftovers: PulpLeftovers,
) -> None:
    build = await file_a_build("albs-distro-outage")
    admin = bearer(await make_token("distro-admin", admin=True))
    distro = distro_name(run_id, "outage", pulp_leftovers)
    await create(api, admin, distro)

    before = pulp_proxy.bytes_in
    adding = asyncio.ensure_future(api.post(f"{URL}add/{build.build_id}/{distro}/", headers=admin))
    await wait_for_traffic(pulp_proxy, before)  # the add has reached Pulp: now Pulp goes away
    await pulp_proxy.close()
    await asyncio.sleep(OUTAGE_SECONDS)
    await pulp_proxy.open()
    answer = await adding

    assert (answer.status_code, answer.json()) == (200, {"success": True}), answer.text
    assert await links(sessions, distro) == {(distro, build.build_id)}
    repos = await distribution_repos(sessions, distro)
    assert await contents(pulp_http, repos) == expected(distro, build)
