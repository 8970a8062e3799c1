"""A private nginx on loopback for the tests, as tests/http_env.sh makes one
for the C tests: a free 127.0.0.1 port, a temporary configuration, a served
directory, stopped (and its workers with it) when done.

    with Nginx(rates={"slow": "1m"}) as web:
        (web.root / "a.bin").write_bytes(data)
        web.url("a.bin")          # http://127.0.0.1:PORT/a.bin
        web.url("a.bin", "slow")  # the same file at 1 MB/s per connection

Locations: /NAME serves ROOT/NAME; /RATE_NAME/NAME the same file capped
with limit_rate per connection (one location per entry of ``rates``), sent
16 KiB at a time so that the rate holds from the first byte (else nginx
sends a second's worth at once);
/dav/NAME takes PUT into ROOT/NAME (directories made); /forbidden/... is 403.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

NGINX = os.environ.get("LUMIO_NGINX", "/usr/sbin/nginx")


def available():
    return os.access(NGINX, os.X_OK)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    def __init__(self, rates=None):
        self.rates = dict(rates or {})
        self.proc = None
        self.port = None
        self._dir = None

    def _conf(self, port):
        st = self._dir / "state"
        rated = "\n".join(
            f"        location /{name}/ {{ alias {self.root}/; limit_rate {rate}; "
            "sendfile_max_chunk 16k; }"
            for name, rate in self.rates.items())
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        return f"""{user}
daemon off;
master_process on;
worker_processes 2;
error_log {st}/error.log warn;
pid {st}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    default_type application/octet-stream;
    etag on;
    client_body_temp_path {st}/client_body;
    proxy_temp_path {st}/proxy;
    fastcgi_temp_path {st}/fastcgi;
    uwsgi_temp_path {st}/uwsgi;
    scgi_temp_path {st}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {self.root};
        location / {{}}
{rated}
        location /forbidden/ {{ return 403; }}
        location /dav/ {{
            alias {self.root}/;
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
            client_max_body_size 0;
        }}
    }}
}}
"""

    def _answers(self, port):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        except urllib.error.HTTPError:
            return True  # any status: nginx is there
        except OSError:
            return False
        return True

    def start(self):
        # /var/tmp, readable by nginx's workers (nobody) when we are root.
        self._dir = pathlib.Path(tempfile.mkdtemp(prefix="lumio-pyhttp.", dir="/var/tmp"))
        os.chmod(self._dir, 0o755)
        self.root = self._dir / "root"
        (self._dir / "state").mkdir()
        self.root.mkdir()
        os.chmod(self.root, 0o777)  # /dav/ writes as nobody
        for attempt in range(5):  # a port found free may be taken before nginx binds it
            port = _free_port()
            conf = self._dir / "state" / "nginx.conf"
            conf.write_text(self._conf(port))
            self.proc = subprocess.Popen(
                [NGINX, "-p", f"{self._dir}/state/", "-c", str(conf), "-e",
                 f"{self._dir}/state/error.log"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(100):
                if self._answers(port):
                    self.port = port
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            err = self._stop_proc()
            if "Address already in use" not in err:
                self.stop()
                raise RuntimeError(f"nginx did not start on 127.0.0.1:{port}: {err}")
        self.stop()
        raise RuntimeError("nginx: no free port after 5 attempts")

    def _stop_proc(self):
        p, self.proc = self.proc, None
        if p is None:
            return ""
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        err = p.stderr.read().decode(errors="replace")
        p.stderr.close()
        log = self._dir / "state" / "error.log"
        return err + (log.read_text(errors="replace") if log.exists() else "")

    def stop(self):
        self._stop_proc()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def url(self, name, location=""):
        loc = f"/{location}" if location else ""
        return f"http://127.0.0.1:{self.port}{loc}/{name}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
