"""The warm pool's pure parts: how many entries to make or trim, and a renamed base URL."""

import pytest

from artifacts.pool import POOL_PREFIX, deficit, pool_name
from artifacts.pulp import PulpError, _moved


def test_deficit_makes_what_is_missing_and_trims_what_is_beyond_the_target() -> None:
    assert deficit(8, 5) == 3
    assert deficit(8, 8) == 0
    assert deficit(0, 3) == -3  # a kind switched off: its ready entries go


def test_pool_names_are_opaque_and_distinct() -> None:
    names = {pool_name() for _ in range(100)}
    assert len(names) == 100
    assert all(name.startswith(POOL_PREFIX) for name in names)


def test_a_renamed_distribution_serves_under_its_new_base_path() -> None:
    distribution = {
        "pulp_href": "/pulp/api/v3/distributions/rpm/rpm/1/",
        "base_path": "builds/albs-pool-ab12",
        "base_url": "http://pulp:24816/pulp/content/builds/albs-pool-ab12/",
    }
    wanted = {"base_path": "builds/AlmaLinux-8-x86_64-7-br"}
    assert _moved(distribution, wanted) == (
        "http://pulp:24816/pulp/content/builds/AlmaLinux-8-x86_64-7-br/"
    )
    with pytest.raises(PulpError):
        _moved({**distribution, "base_url": "http://elsewhere/"}, wanted)
