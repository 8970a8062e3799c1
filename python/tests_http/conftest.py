"""pytest for lumio over HTTP: run by ctest under tests/http_env.sh, which
starts nginx on loopback and says where (LUMIO_HTTP_URL, LUMIO_HTTP_ROOT)."""

import os

import pytest


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if exitstatus == 0 and skipped:
        session.exitstatus = 77


@pytest.fixture
def http():
    url, root = os.environ.get("LUMIO_HTTP_URL"), os.environ.get("LUMIO_HTTP_ROOT")
    if not url or not root:
        pytest.skip("run under tests/http_env.sh (nginx)")
    return url, root
