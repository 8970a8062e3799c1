"""pytest for lumio against S3: an s3rver (npm, installed by
scripts/setup-node.sh into tests/node) started on loopback for the session,
with a bucket "bkt"; the AWS_* variables point lumio at it."""

import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
S3RVER = os.path.join(ROOT, "tests", "node", "node_modules", ".bin", "s3rver")


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if exitstatus == 0 and skipped:
        session.exitstatus = 77


@pytest.fixture(scope="session")
def s3():
    if not os.access(S3RVER, os.X_OK):
        pytest.skip("s3rver is not installed (scripts/setup-node.sh)")
    d = tempfile.mkdtemp(prefix="lumio-s3-", dir="/var/tmp")
    log = open(os.path.join(d, "log"), "w+")
    p = subprocess.Popen([S3RVER, "-d", os.path.join(d, "data"), "-a", "127.0.0.1", "-p", "0",
                          "--service-endpoint", "localhost", "--configure-bucket", "bkt"],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        port = None
        for _ in range(200):
            log.seek(0)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read())
            if m:
                port = m.group(1)
                break
            time.sleep(0.05)
        assert port, "s3rver did not start"
        os.environ.update(AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER",
                          AWS_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        p.terminate()
        p.wait(10)
        shutil.rmtree(d, ignore_errors=True)
