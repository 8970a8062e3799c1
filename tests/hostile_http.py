#!/usr/bin/python3
"""A small HTTP server that misbehaves on purpose, for the remote reader's tests.

    hostile_http.py --root DIR --port-file FILE --log FILE [--lifetime SECONDS]

Binds 127.0.0.1 on a port the kernel picks (written to --port-file), serves
files of --root, and exits by itself after --lifetime seconds (default 120).
Every request's method, path and headers go to --log as one JSON line, so a
test can see what a client sent where. The first path component picks the
behaviour; the rest names a file under the root:

    /plain/NAME      a good server: HEAD, ranges (206), ETag, keep-alive
    /slow/NAME       as plain, but every body at ?bps=N bytes a second (default
                     1 MiB/s): long enough transfers for a progress line
    /flip/NAME       as plain, but GETs after the first serve NAME.flip (a file
                     rewritten between two reads)
    /norange/NAME    ignores Range: 200 with the whole body (Python's http.server)
    /chunked/NAME    no length: chunked transfer, ignores Range; HEAD has no length
    /close/NAME      no length: the body ends when the connection closes
    /nohead/NAME     HEAD is 403 (a URL presigned for GET); ranged GETs work, and
                     only with the query string's X-Amz-Signature=good
    /hang/...        reads the request and never answers
    /hangdata/NAME   a Zarr store whose metadata documents (.zarray, zarr.json, ...)
                     are served as by /plain/ (404 when absent) and whose chunks
                     never come: any other GET or HEAD, and any PUT, is never answered
    /garbage/...     answers bytes that are not HTTP
    /http09/...      answers an HTTP/0.9 body (no status line)
    /redirect-file/...    302 to file:///etc/passwd
    /redirect-gopher/...  302 to gopher://127.0.0.1/
    /redirect-other/REST  307 to http://localhost:PORT/plain/REST (another host name)
    /bighdr/...      a 1 MiB response header
    /hugelen/...     Content-Length: 99999999999999999999999
    /statusonly/...  a status line, then the connection is closed (after ?delay=S)
    /shortbody/NAME  HEAD gives NAME's size; GET ignores Range and sends 200 with no
                     length and only the first 1000 bytes, then closes
    /spam100/...     "100 Continue" heads every 0.2 s for up to 30 s, never a response
    /many100/...     100 "100 Continue" heads, then a 200
    /big100/...      five 103 heads of 60 KiB each (300 KiB of head), then a 200
    /early/NAME      one 103 Early Hints head, then what /plain/NAME answers
    anything else    404

An S3 path-style request (/BUCKET/KEY) is the same with the bucket as the mode.
"""
import argparse
import json
import os
import socketserver
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

ARGS = None
LOG_LOCK = threading.Lock()
FLIPS = {}  # /flip/NAME: GETs so far


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile/1"

    def log_message(self, fmt, *args):  # quiet: the JSON log says it all
        pass

    def record(self):
        entry = {"method": self.command, "path": self.path,
                 "headers": {k.lower(): v for k, v in self.headers.items()}}
        with LOG_LOCK, open(ARGS.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def split(self):
        u = urllib.parse.urlsplit(self.path)
        parts = u.path.lstrip("/").split("/", 1)
        mode = parts[0]
        rest = parts[1] if len(parts) > 1 else ""
        return mode, rest, urllib.parse.parse_qs(u.query)

    def file(self, rest):
        p = os.path.normpath(os.path.join(ARGS.root, urllib.parse.unquote(rest)))
        if not p.startswith(os.path.abspath(ARGS.root) + os.sep) or not os.path.isfile(p):
            return None
        with open(p, "rb") as f:
            return f.read()

    def raw(self, data):
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

    def simple(self, status, headers=(), body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.handle_any()

    def do_GET(self):
        self.handle_any()

    def do_PUT(self):  # only /hangdata/ takes a PUT (and never answers it)
        if self.split()[0] == "hangdata":
            self.handle_any()
        else:
            self.record()
            self.simple(405)
            self.close_connection = True

    def handle_any(self):
        self.record()
        mode, rest, query = self.split()
        handler = getattr(self, "mode_" + mode.replace("-", "_"), None)
        if handler is None:
            self.simple(404, body=b"not found\n")
            return
        handler(rest, query)

    # ---- well-behaved and range-less bodies --------------------------------

    def ranged(self, data, etag='"hostile-1"', bps=0):
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a)
            end = int(b) if b else len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data):
                self.simple(416, [("Content-Range", "bytes */%d" % len(data))])
                return
            body = data[start:end + 1]
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, len(data)))
        else:
            body = data
            self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if not bps:
            self.wfile.write(body)
            return
        step = max(1, bps // 20)  # twenty pieces a second
        for at in range(0, len(body), step):
            self.wfile.write(body[at:at + step])
            self.wfile.flush()
            time.sleep(0.05)

    def mode_plain(self, rest, query):
        data = self.file(rest)
        if data is None:
            self.simple(404)
            return
        self.ranged(data)

    def mode_slow(self, rest, query):
        data = self.file(rest)
        if data is None:
            self.simple(404)
            return
        self.ranged(data, bps=int(query.get("bps", ["1048576"])[0]))

    def mode_flip(self, rest, query):
        """A file whose GETs (not HEADs) after the first are served from
        NAME.flip: metadata that changes between two opens of an array."""
        key = rest
        with LOG_LOCK:
            n = FLIPS.get(key, 0) + (self.command == "GET")
            FLIPS[key] = n
        data = self.file(rest + ".flip" if n > 1 else rest)
        if data is None:
            self.simple(404)
            return
        self.ranged(data)

    def mode_norange(self, rest, query):
        data = self.file(rest)
        if data is None:
            self.simple(404)
            return
        self.simple(200, [("Last-Modified", "Mon, 07 Dec 2026 00:00:00 GMT")], data)

    def mode_chunked(self, rest, query):
        data = self.file(rest)
        if data is None:
            self.simple(404)
            return
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        for i in range(0, len(data), 100000):
            piece = data[i:i + 100000]
            self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def mode_close(self, rest, query):
        data = self.file(rest)
        if data is None:
            self.simple(404)
            return
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD":
            self.wfile.write(data)

    def mode_nohead(self, rest, query):
        if self.command == "HEAD" or query.get("X-Amz-Signature") != ["good"]:
            self.simple(403, body=b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
            return
        self.mode_plain(rest, query)

    # ---- broken servers ------------------------------------------------------

    def mode_hang(self, rest, query):
        time.sleep(ARGS.lifetime)

    ZARR_META = {".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"}

    def mode_hangdata(self, rest, query):
        if self.command != "PUT" and rest.rsplit("/", 1)[-1] in self.ZARR_META:
            self.mode_plain(rest, query)
        else:
            self.mode_hang(rest, query)

    def mode_garbage(self, rest, query):
        self.raw(b"\x00\x01garbage \xff\xfe not http at all\r\n\r\n")

    def mode_http09(self, rest, query):
        self.raw(b"<html>an HTTP/0.9 body</html>\n")

    def redirect(self, status, where):
        self.simple(status, [("Location", where)])

    def mode_redirect_file(self, rest, query):
        self.redirect(302, "file:///etc/passwd")

    def mode_redirect_gopher(self, rest, query):
        self.redirect(302, "gopher://127.0.0.1/")

    def mode_redirect_other(self, rest, query):
        port = self.server.server_address[1]
        self.redirect(307, "http://localhost:%d/plain/%s" % (port, rest))

    def mode_bighdr(self, rest, query):
        self.raw(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n"
                 b"Content-Length: 2\r\n\r\nok")

    def mode_hugelen(self, rest, query):
        self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nok")

    def mode_statusonly(self, rest, query):
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        self.wfile.flush()
        time.sleep(float(query.get("delay", ["0"])[0]))
        self.close_connection = True

    def mode_shortbody(self, rest, query):
        data = self.file(rest)
        if data is None:
            self.simple(404)
            return
        if self.command == "HEAD":
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return
        self.raw(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + data[:1000])

    def mode_spam100(self, rest, query):
        # Bounded whatever the client does; a client that gave up ends it
        # sooner (the write fails).
        stop = time.time() + min(30.0, ARGS.lifetime)
        try:
            while time.time() < stop:
                self.wfile.write(b"HTTP/1.1 100 Continue\r\nX-a: b\r\n\r\n")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass
        self.close_connection = True

    def mode_many100(self, rest, query):
        self.raw(b"HTTP/1.1 100 Continue\r\n\r\n" * 100 +
                 b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def mode_big100(self, rest, query):
        hint = b"HTTP/1.1 103 Early Hints\r\nX-Big: " + b"a" * (60 << 10) + b"\r\n\r\n"
        self.raw(hint * 5 + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def mode_early(self, rest, query):
        self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        self.mode_plain(rest, query)


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--lifetime", type=float, default=120)
    ARGS = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    # The lifetime bounds the server whatever happens to the harness.
    threading.Timer(ARGS.lifetime, lambda: os._exit(0)).start()
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, ARGS.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
