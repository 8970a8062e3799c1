#!/usr/bin/python3
"""The real WebSocket peer of the tests (Debian's python3-websockets).

server: accept lumio writers and append every binary message to OUT (the
        signature once, then chunks), so OUT is a stream; it can drop a
        connection after N messages and come back after a pause, use TLS, or
        refuse the upgrade with an HTTP status or a redirect.
client: send a stream file to URL as a writer does (signature, then one
        message a chunk), with hostile messages mixed in on request.

Every wait is bounded: the server stops after --lifetime seconds.
"""
import argparse
import asyncio
import http
import ssl
import struct
import sys

import websockets

SIG = b"\x89LUMIO\r\n"
HDR = 48


def split_stream(data):
    """The signature and the chunks of a stream file."""
    assert data[:8] == SIG, "not a lumio stream"
    out, off = [data[:16]], 16
    while off + HDR <= len(data):
        stored = struct.unpack_from("<I", data, off + 8)[0]
        out.append(data[off : off + HDR + stored])
        off += HDR + stored
    return out


async def serve(a):
    seen_sig = False
    messages = 0
    drops_left = a.drops
    restart = asyncio.Event()
    out = open(a.out, "ab")

    async def handler(ws, path=None):
        nonlocal seen_sig, messages, drops_left
        got = 0
        async for m in ws:
            if isinstance(m, str):
                continue
            if m[:8] == SIG:
                if seen_sig:
                    continue  # a new connection's signature: the file has one
                seen_sig = True
            out.write(m)
            out.flush()
            messages += 1
            got += 1
            if a.drop_after and drops_left and got >= a.drop_after:
                drops_left -= 1
                ws.transport.abort()  # mid-stream, no close frame
                restart.set()
                return

    def refuse(path, headers):
        if a.redirect:
            return (http.HTTPStatus.FOUND, [("Location", a.redirect)], b"elsewhere\n")
        if a.refuse:
            return (http.HTTPStatus(a.refuse), [], b"go away\n")
        return None

    tls = None
    if a.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(a.cert, a.key)
    deadline = asyncio.get_running_loop().time() + a.lifetime
    while True:
        async with websockets.serve(
            handler, "127.0.0.1", a.port, ssl=tls, process_request=refuse, max_size=None
        ):
            print("ready", flush=True)
            left = deadline - asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(restart.wait(), timeout=max(left, 0.01))
            except asyncio.TimeoutError:
                break
        restart.clear()
        print("down", flush=True)
        await asyncio.sleep(a.pause)
    out.close()


HOSTILE = {
    # name: messages sent before the stream (each a bytes or a str)
    "text": ["hello, I am text"],
    "garbage": [b"this is not a lumio stream at all"],
    "extra": None,  # a valid chunk with bytes after it (built below)
    "fragmented": None,  # the stream's chunks as fragmented messages: accepted
}


async def client(a):
    parts = split_stream(open(a.file, "rb").read())
    async with websockets.connect(a.url, max_size=None, open_timeout=10, close_timeout=5) as ws:
        if a.hostile == "text":
            await ws.send("hello, I am text")
        elif a.hostile == "garbage":
            await ws.send(b"this is not a lumio stream at all")
        await ws.send(parts[0])
        if a.hostile == "badchunk":
            await ws.send(parts[1] + b"trailing bytes")
        for i, p in enumerate(parts[1:]):
            if a.hostile == "fragmented":
                await ws.send([p[:10], p[10:HDR + 3], p[HDR + 3 :]])
            else:
                await ws.send(p)
            if a.pause:
                await asyncio.sleep(a.pause)
        try:
            await asyncio.wait_for(ws.close(), timeout=5)
        except Exception:
            pass


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--drop-after", type=int, default=0)
    s.add_argument("--drops", type=int, default=1)
    s.add_argument("--pause", type=float, default=0.5)
    s.add_argument("--cert")
    s.add_argument("--key")
    s.add_argument("--refuse", type=int, default=0)
    s.add_argument("--redirect", default="")
    s.add_argument("--lifetime", type=float, default=60)
    c = sub.add_parser("client")
    c.add_argument("--url", required=True)
    c.add_argument("--file", required=True)
    c.add_argument("--hostile", default="")
    c.add_argument("--pause", type=float, default=0)
    a = p.parse_args()
    try:
        asyncio.run(serve(a) if a.cmd == "server" else client(a))
    except (websockets.exceptions.ConnectionClosed, OSError) as e:
        if a.cmd == "client":
            print(f"client: {type(e).__name__}: {e}", file=sys.stderr)
            sys.exit(3)


if __name__ == "__main__":
    main()
