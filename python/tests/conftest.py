import os
import sys

import pytest

# Tests run against build/python (PYTHONPATH), never an installed copy.
import lumio  # noqa: E402


@pytest.fixture
def tmp(tmp_path):
    return tmp_path
