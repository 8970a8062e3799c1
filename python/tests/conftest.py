"""pytest for the lumio package: run against build/python (PYTHONPATH),
never an installed copy. A test that cannot run here is skipped, and then
the whole run exits 77 (ctest: skipped, never passed)."""

import pytest

import lumio  # noqa: F401  (the package under test: fail early if it is not built)


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if exitstatus == 0 and skipped:
        session.exitstatus = 77
