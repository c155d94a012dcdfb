"""Pulp goes away while a build is being added to a distribution: the modifies are
retried, the add completes once Pulp is back, and database and Pulp agree.

The outage is the loopback TCP proxy of test_artifacts_pulp_outage.py between the
artifacts service and the shared local Pulp.
"""

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from shared.db.session import SessionFactory
from tests.integration.test_artifacts_pulp_outage import (
    artifacts_behind_proxy,
    pulp_proxy,
    wait_for_traffic,
)
from tests.integration.test_distributions import (
    a_filed_build,
    create,
    distro_name,
    expected,
    links,
)
from tests.support.artifacts import EventLog
from tests.support.distributions import URL, PulpLeftovers, contents, distribution_repos
from tests.support.events import EventBus
from tests.support.rpms import RpmFactory
from tests.support.stack import TokenMaker, bearer
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.pulp, pytest.mark.usefixtures("artifacts_behind_proxy")]

__all__ = ["artifacts_behind_proxy", "pulp_proxy"]  # fixtures of this module too

OUTAGE_SECONDS = 4.0


async def test_adding_waits_out_a_pulp_outage_and_ends_consistent(
    api: httpx.AsyncClient,
    make_token: TokenMaker,
    sessions: SessionFactory,
    module_bus: EventBus,
    event_log: EventLog,
    pulp_http: httpx.AsyncClient,
    pulp_proxy: TcpProxy,
    rpms: RpmFactory,
    build_ids: Iterator[int],
    run_id: str,
    pulp_leftovers: PulpLeftovers,
) -> None:
    args = (sessions, module_bus, event_log, pulp_http, build_ids, pulp_leftovers, rpms)
    build = await a_filed_build(*args, "albs-distro-outage")
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
