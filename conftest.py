pytest_plugins = ["tests.support.fixtures", "tests.support.stack", "tests.support.events"]
