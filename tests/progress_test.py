#!/usr/bin/python3
"""The progress line (src/cli/progress.c), seen on a pseudo-terminal.

    tests/hostile_env.sh /usr/bin/python3 tests/progress_test.py LUMIO

Objects come from tests/hostile_http.py's /slow/ mode (1 MiB a second), so
that each command runs for about two seconds: long enough for the line to
be drawn. With standard error on a terminal, `get`, `cat` of a URL and
`zarr create --from` show done, total, percent, rate and time left, and end
with one summary line; with standard error not a terminal, or with the data
going to the terminal too, nothing is drawn.
"""
import os
import pty
import re
import subprocess
import sys
import tempfile
import threading
import time

LUMIO = os.path.abspath(sys.argv[1])
URL = os.environ.get("LUMIO_HOSTILE_URL")
ROOT = os.environ.get("LUMIO_HOSTILE_ROOT")
if not URL or not ROOT:
    print("SKIP: run under tests/hostile_env.sh (no server)")
    sys.exit(77)

SIZE = 2 << 20
FAILED = []


def check(name, ok, shown=""):
    print(("ok   " if ok else "FAIL ") + name)
    if not ok:
        FAILED.append(name)
        if shown:
            print("     terminal showed: %r" % shown[-600:])


def feed_slowly(pipe, data, pieces):
    """Write data to pipe in `pieces` parts, a tenth of a second apart."""
    step = max(1, len(data) // pieces)
    try:
        for at in range(0, len(data), step):
            pipe.write(data[at:at + step])
            pipe.flush()
            time.sleep(0.1)
    finally:
        pipe.close()


def run(args, cwd, stdout=None, feed=None, stdout_on_tty=False):
    """Run with standard error on a pseudo-terminal (and standard output, if
    asked): (exit status, what the terminal was sent)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(args, cwd=cwd, stderr=slave,
                         stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
                         stdout=slave if stdout_on_tty else stdout or subprocess.DEVNULL)
    os.close(slave)
    feeder = None
    if feed:
        feeder = threading.Thread(target=feed_slowly, args=(p.stdin, *feed))
        feeder.start()
    got = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the last holder of the terminal is gone
            break
        if not chunk:
            break
        got += chunk
    rc = p.wait()
    if feeder:
        feeder.join()
    os.close(master)
    return rc, got.decode("utf-8", "replace")


def frames(shown):
    """Every state of the line: the text after each carriage return, less
    the erase-to-end-of-line that follows it."""
    return [f.replace("\x1b[K", "") for f in re.split(r"[\r\n]+", shown) if f]


def drawn_with_total(shown, verb, total):
    """A line showing done of total, a percent below 100, rate and time left."""
    pat = re.compile(r"^%s [\d.]+ (B|KiB|MiB) of %s \((\d+)%%\), [\d.]+ (B|KiB|MiB)/s"
                     r"(, \w+ left)?$" % (verb, re.escape(total)))
    return any((m := pat.match(f)) and int(m.group(2)) < 100 for f in frames(shown))


def summary_last(shown, verb, total):
    """The last thing on the terminal: one summary line, ended."""
    last = frames(shown)[-1] if frames(shown) else ""
    return shown.endswith("\n") and bool(
        re.match(r"^%s %s in [\d.]+ s \([\d.]+ (B|KiB|MiB)/s\)$" % (verb, re.escape(total)), last))


def main():
    with open(os.path.join(ROOT, "obj"), "wb") as f:
        f.write(os.urandom(SIZE))
    with open(os.path.join(ROOT, "text"), "wb") as f:
        f.write(b"x" * SIZE)
    work = tempfile.mkdtemp(prefix="lumio-progress.")
    want = open(os.path.join(ROOT, "obj"), "rb").read()

    rc, shown = run([LUMIO, "get", URL + "/slow/obj", "-o", "got"], work)
    got = open(os.path.join(work, "got"), "rb").read() if rc == 0 else b""
    check("get: exit 0 and the object", rc == 0 and got == want, shown)
    check("get: done of total, percent, rate, time left", drawn_with_total(shown, "fetched",
                                                                           "2.0 MiB"), shown)
    check("get: ends with one summary line", summary_last(shown, "fetched", "2.0 MiB"), shown)
    check("get: one object is not counted as files", "file" not in shown, shown)

    with open(os.path.join(work, "cat.out"), "wb") as out:
        rc, shown = run([LUMIO, "cat", URL + "/slow/obj"], work, stdout=out)
    got = open(os.path.join(work, "cat.out"), "rb").read()
    check("cat URL: exit 0 and the object", rc == 0 and got == want, shown)
    check("cat URL: done of total, percent", drawn_with_total(shown, "fetched", "2.0 MiB"), shown)
    check("cat URL: ends with one summary line", summary_last(shown, "fetched", "2.0 MiB"), shown)

    raw = os.urandom(64 * 1024)
    rc, shown = run([LUMIO, "zarr", "create", "arr", "--shape", "64,1024", "--chunks", "4,1024",
                     "--dtype", "u1", "--from", "-"], work, feed=(raw, 20))
    check("zarr create --from: exit 0", rc == 0, shown)
    check("zarr create --from: done of total, percent",
          drawn_with_total(shown, "written", "64.0 KiB"), shown)
    check("zarr create --from: summary", summary_last(shown, "written", "64.0 KiB"), shown)

    # The data to the terminal as well: no line in the middle of it (as curl).
    rc, shown = run([LUMIO, "cat", URL + "/slow/text"], work, stdout_on_tty=True)
    check("cat URL to the terminal: the data, no progress line",
          rc == 0 and shown.count("x") == SIZE and "fetched" not in shown, shown[:200])

    # Standard error not a terminal: nothing at all.
    p = subprocess.run([LUMIO, "get", URL + "/slow/obj", "-o", "got2"], cwd=work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    check("get, stderr not a terminal: no progress line, nothing on stderr",
          p.returncode == 0 and p.stderr == b"", p.stderr.decode("utf-8", "replace"))
    p = subprocess.run([LUMIO, "hash", "got2"], cwd=work, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    check("hash, stderr not a terminal: nothing on stderr", p.returncode == 0 and p.stderr == b"",
          p.stderr.decode("utf-8", "replace"))

    subprocess.run(["rm", "-rf", work])
    print("progress: %d failed" % len(FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
