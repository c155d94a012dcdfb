from typing import Any

import pytest
from xdist.scheduler import LoadFileScheduling

pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.stack",
    "tests.support.events",
    "tests.support.live_stack",
    "tests.support.gitea_bridge",
    "tests.support.rpms",
    "tests.support.pulp_node",
    "tests.support.artifacts",
    "tests.support.distributions",
    "tests.support.signing",
]


# The tests that start service processes on a stack of their own or the shared live stack
# (three scheduler replicas, ~40 PostgreSQL connections each) run on one worker, one after
# the other; two such stacks at once came close to PostgreSQL's 100 connections.
PROCESS_STACK_TESTS = "tests/e2e/"


class ModulesAndProcessStacks(LoadFileScheduling):  # type: ignore[misc]  # xdist is untyped
    """`--dist loadfile`: each module whole on one worker (module fixtures built once),
    and every end-to-end module on the same one."""

    def _split_scope(self, nodeid: str) -> str:
        module = super()._split_scope(nodeid)
        return PROCESS_STACK_TESTS if module.startswith(PROCESS_STACK_TESTS) else module


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") == "loadfile":
        return ModulesAndProcessStacks(config, log)
    return None
