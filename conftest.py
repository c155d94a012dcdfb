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
