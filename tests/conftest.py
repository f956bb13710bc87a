"""Test configuration shared by every suite."""

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.loop_close",
    "tests.fixtures.orchestrators",
    "tests.fixtures.sessions_server",
]
