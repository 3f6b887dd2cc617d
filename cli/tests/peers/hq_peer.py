#!/usr/bin/env python3
"""aioquic speaking the interop runner's hq-interop (HTTP/0.9 over QUIC).

client: fetches every --path from the server (one bidirectional stream
each: "GET /path\\r\\n" + FIN), prints "RESULT path=... len=... sha256=..."
per path and "RESULT done=1" when all streams ended.

server: serves files of --root; prints "LISTENING port=N" once bound and
exits after --connections connections ended or --deadline seconds.
"""
import argparse
import asyncio
import hashlib
import os
import ssl
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived

ALPN = ["hq-interop"]


class HqClient(QuicConnectionProtocol):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.bodies = {}
        self.waiters = {}

    def fetch(self, path):
        sid = self._quic.get_next_available_stream_id()
        self.bodies[sid] = bytearray()
        fut = asyncio.get_running_loop().create_future()
        self.waiters[sid] = fut
        self._quic.send_stream_data(sid, f"GET {path}\r\n".encode(), end_stream=True)
        self.transmit()
        return fut

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived) and event.stream_id in self.bodies:
            self.bodies[event.stream_id] += event.data
            if event.end_stream and not self.waiters[event.stream_id].done():
                self.waiters[event.stream_id].set_result(bytes(self.bodies[event.stream_id]))


class HqServer(QuicConnectionProtocol):
    root = "."
    ended = None

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.req = {}

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived):
            buf = self.req.get(event.stream_id, b"") + event.data
            self.req[event.stream_id] = buf
            if b"\n" in buf or event.end_stream:
                line = buf.split(b"\n", 1)[0].strip().decode(errors="replace")
                parts = line.split()
                body = b""
                if len(parts) >= 2 and parts[0] == "GET":
                    p = os.path.normpath(os.path.join(self.root, parts[1].lstrip("/")))
                    if p.startswith(os.path.abspath(self.root)) and os.path.isfile(p):
                        with open(p, "rb") as f:
                            body = f.read()
                self._quic.send_stream_data(event.stream_id, body, end_stream=True)
                self.transmit()
        elif isinstance(event, ConnectionTerminated):
            HqServer.ended.release()


async def client_main(args):
    cfg = QuicConfiguration(is_client=True, alpn_protocols=ALPN)
    cfg.load_verify_locations(args.cafile)
    cfg.server_name = "localhost"
    async with connect(args.host, args.port, configuration=cfg, create_protocol=HqClient) as proto:
        futs = [(p, proto.fetch(p)) for p in args.path]
        for p, fut in futs:
            body = await asyncio.wait_for(fut, args.deadline)
            print(f"RESULT path={p} len={len(body)} sha256={hashlib.sha256(body).hexdigest()}", flush=True)
    print("RESULT done=1", flush=True)


async def server_main(args):
    cfg = QuicConfiguration(is_client=False, alpn_protocols=ALPN)
    cfg.load_cert_chain(args.cert, args.key)
    HqServer.root = os.path.abspath(args.root)
    HqServer.ended = asyncio.Semaphore(0)
    server = await serve(args.host, args.port, configuration=cfg, create_protocol=HqServer)
    port = server._transport.get_extra_info("sockname")[1]
    print(f"LISTENING port={port}", flush=True)

    async def wait_all():
        for _ in range(args.connections):
            await HqServer.ended.acquire()

    try:
        await asyncio.wait_for(wait_all(), args.deadline)
    finally:
        server.close()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="role", required=True)
    c = sub.add_parser("client")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--cafile", required=True)
    c.add_argument("--path", action="append", required=True)
    c.add_argument("--deadline", type=float, default=30.0)
    s = sub.add_parser("server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--connections", type=int, default=1)
    s.add_argument("--deadline", type=float, default=30.0)
    args = p.parse_args()
    asyncio.run(client_main(args) if args.role == "client" else server_main(args))


if __name__ == "__main__":
    sys.exit(main())
