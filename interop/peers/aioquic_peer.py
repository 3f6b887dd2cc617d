#!/usr/bin/env python3
"""aioquic as an interop peer, following the quic-interop-runner's endpoint
contract (see ../../../shared/specs/INTEROP_TEST_CASES.md), on loopback.

Environment:
  ROLE=client|server, TESTCASE=<name>       (unsupported case: exit 127)
  server: LISTEN=ip:port, WWW=dir, CERTS=dir (cert.pem, priv.key)
  client: REQUESTS="https://ip:port/a ...", DOWNLOADS=dir, SERVER_NAME (SNI)
  both:   SSLKEYLOGFILE, QLOGDIR (optional); ALPN=h3 makes a client speak
          HTTP/3 in any case (for servers without hq-interop)

ALPN hq-interop (HTTP/0.9) for every case but http3 (h3). The client does
not verify the server certificate, as the runner's clients do not.
"""
import asyncio
import os
import signal
import ssl
import sys
from urllib.parse import urlparse

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    ProtocolNegotiated,
    StreamDataReceived,
)
from aioquic.quic.packet import QuicProtocolVersion
from aioquic.tls import CipherSuite

CLIENT_CASES = {
    "handshake", "transfer", "multiconnect", "chacha20", "resumption",
    "zerortt", "http3", "keyupdate", "v2", "retry", "connectionmigration",
}
SERVER_CASES = {
    "handshake", "transfer", "multiconnect", "chacha20", "resumption",
    "zerortt", "http3", "keyupdate", "v2", "retry",
}


def unsupported(why):
    print(f"aioquic peer: unsupported: {why}", file=sys.stderr)
    sys.exit(127)


def make_logger():
    d = os.environ.get("QLOGDIR")
    if not d:
        return None
    from aioquic.quic.logger import QuicFileLogger

    os.makedirs(d, exist_ok=True)
    return QuicFileLogger(d)


def keylog():
    p = os.environ.get("SSLKEYLOGFILE")
    return open(p, "a") if p else None


# ----- server -----------------------------------------------------------


class Server(QuicConnectionProtocol):
    www = "."

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.h3 = None
        self.partial = {}

    def file(self, path):
        p = os.path.normpath(os.path.join(self.www, path.lstrip("/")))
        if p.startswith(os.path.abspath(self.www)) and os.path.isfile(p):
            with open(p, "rb") as f:
                return f.read()
        return None

    def quic_event_received(self, event):
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.h3 = H3Connection(self._quic)
        if self.h3 is not None:
            for ev in self.h3.handle_event(event):
                if isinstance(ev, HeadersReceived):
                    hdr = dict(ev.headers)
                    body = self.file(hdr.get(b":path", b"/").decode())
                    status = b"200" if body is not None else b"404"
                    body = body if body is not None else b"not found\n"
                    self.h3.send_headers(ev.stream_id, [(b":status", status), (b"content-length", str(len(body)).encode())])
                    self.h3.send_data(ev.stream_id, body, end_stream=True)
            self.transmit()
            return
        if isinstance(event, StreamDataReceived):
            buf = self.partial.get(event.stream_id, b"") + event.data
            self.partial[event.stream_id] = buf
            if b"\n" in buf or event.end_stream:
                line = buf.split(b"\n", 1)[0].strip().decode(errors="replace").split()
                body = self.file(line[1]) if len(line) >= 2 and line[0] == "GET" else None
                self._quic.send_stream_data(event.stream_id, body or b"", end_stream=True)
                del self.partial[event.stream_id]
                self.transmit()


async def run_server(case):
    host, port = os.environ["LISTEN"].rsplit(":", 1)
    host = host.strip("[]")
    certs = os.environ["CERTS"]
    Server.www = os.path.abspath(os.environ["WWW"])
    cfg = QuicConfiguration(
        is_client=False,
        alpn_protocols=["hq-interop"] + H3_ALPN,
        quic_logger=make_logger(),
        secrets_log_file=keylog(),
        max_data=32 * 1024 * 1024,
        max_stream_data=16 * 1024 * 1024,
        idle_timeout=30.0,
    )
    if case == "v2":
        cfg.supported_versions = [QuicProtocolVersion.VERSION_2, QuicProtocolVersion.VERSION_1]
    cfg.load_cert_chain(os.path.join(certs, "cert.pem"), os.path.join(certs, "priv.key"))
    tickets = {}
    server = await serve(
        host,
        int(port),
        configuration=cfg,
        create_protocol=Server,
        session_ticket_fetcher=tickets.pop,
        session_ticket_handler=lambda t: tickets.__setitem__(t.ticket, t),
        retry=(case == "retry"),
    )
    print(f"aioquic peer: listening on {host}:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    server.close()


# ----- client -----------------------------------------------------------


class Client(QuicConnectionProtocol):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.h3 = None
        self.bodies = {}
        self.waiters = {}

    def fetch(self, url, http3):
        loop = asyncio.get_running_loop()
        if http3:
            if self.h3 is None:
                self.h3 = H3Connection(self._quic)
            sid = self._quic.get_next_available_stream_id()
            self.h3.send_headers(
                sid,
                [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", url.netloc.encode()), (b":path", (url.path or "/").encode())],
                end_stream=True,
            )
        else:
            sid = self._quic.get_next_available_stream_id()
            self._quic.send_stream_data(sid, f"GET {url.path or '/'}\r\n".encode(), end_stream=True)
        self.bodies[sid] = bytearray()
        fut = loop.create_future()
        self.waiters[sid] = fut
        self.transmit()
        return fut

    def done(self, sid):
        fut = self.waiters.get(sid)
        if fut is not None and not fut.done():
            fut.set_result(bytes(self.bodies[sid]))

    def quic_event_received(self, event):
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            # From the first event on: the server's control and QPACK
            # streams arrive right after the handshake.
            self.h3 = H3Connection(self._quic)
        if isinstance(event, ConnectionTerminated):
            for fut in self.waiters.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"connection closed: {event.error_code:#x} {event.reason_phrase}"))
            return
        if self.h3 is not None:
            for ev in self.h3.handle_event(event):
                if isinstance(ev, DataReceived) and ev.stream_id in self.bodies:
                    self.bodies[ev.stream_id] += ev.data
                    if ev.stream_ended:
                        self.done(ev.stream_id)
                elif isinstance(ev, HeadersReceived) and ev.stream_ended:
                    self.done(ev.stream_id)
            return
        if isinstance(event, StreamDataReceived) and event.stream_id in self.bodies:
            self.bodies[event.stream_id] += event.data
            if event.end_stream:
                self.done(event.stream_id)


def save(url, body):
    name = os.path.basename(url.path) or "index.html"
    with open(os.path.join(os.environ["DOWNLOADS"], name), "wb") as f:
        f.write(body)


async def fetch_all(cfg, host, port, urls, http3, zero_rtt=False, key_update=False, migrate=False):
    async with connect(host, port, configuration=cfg, create_protocol=Client, wait_connected=not zero_rtt) as proto:
        if key_update:
            proto._quic.request_key_update()
        if migrate:
            # Active migration: a new connection ID (RFC 9000 §9.5); the
            # server's preferred_address is followed by aioquic itself.
            proto.change_connection_id()
        futs = [(u, proto.fetch(u, http3)) for u in urls]
        for u, fut in futs:
            save(u, await asyncio.wait_for(fut, 60))
        proto.close()
        await proto.wait_closed()


async def run_client(case):
    urls = [urlparse(u) for u in os.environ["REQUESTS"].split()]
    host, port = urls[0].hostname, urls[0].port or 443
    # ALPN=h3 (set by the runner when the server lacks hq-interop) keeps the
    # case's behaviour but speaks HTTP/3.
    http3 = case == "http3" or os.environ.get("ALPN") == "h3"
    tickets = []

    def config():
        cfg = QuicConfiguration(
            is_client=True,
            alpn_protocols=H3_ALPN if http3 else ["hq-interop"],
            quic_logger=make_logger(),
            secrets_log_file=keylog(),
            server_name=os.environ.get("SERVER_NAME", "localhost"),
            verify_mode=ssl.CERT_NONE,
            max_data=32 * 1024 * 1024,
            max_stream_data=16 * 1024 * 1024,
            idle_timeout=30.0,
        )
        if case == "chacha20":
            cfg.cipher_suites = [CipherSuite.CHACHA20_POLY1305_SHA256]
        if case == "v2":
            # Start in v1 and offer v2 in version_information (RFC 9368).
            cfg.original_version = QuicProtocolVersion.VERSION_1
            cfg.supported_versions = [QuicProtocolVersion.VERSION_2, QuicProtocolVersion.VERSION_1]
        return cfg

    if case == "multiconnect":
        for u in urls:
            await fetch_all(config(), host, port, [u], http3)
    elif case in ("resumption", "zerortt"):
        cfg = config()
        done = asyncio.Event()

        def on_ticket(t):
            tickets.append(t)
            done.set()

        async with connect(host, port, configuration=cfg, create_protocol=Client, session_ticket_handler=on_ticket) as proto:
            save(urls[0], await asyncio.wait_for(proto.fetch(urls[0], http3), 60))
            await asyncio.wait_for(done.wait(), 5)
            proto.close()
            await proto.wait_closed()
        cfg = config()
        cfg.session_ticket = tickets[-1]
        await fetch_all(cfg, host, port, urls[1:], http3, zero_rtt=(case == "zerortt"))
    else:
        await fetch_all(config(), host, port, urls, http3, key_update=(case == "keyupdate"), migrate=(case == "connectionmigration"))


def main():
    role, case = os.environ.get("ROLE"), os.environ.get("TESTCASE", "")
    mapped = {"goodput": "transfer", "crosstraffic": "transfer"}.get(case, case)
    if role == "server":
        if mapped not in SERVER_CASES:
            unsupported(f"server test case {case!r}")
        asyncio.run(run_server(mapped))
    elif role == "client":
        if mapped not in CLIENT_CASES:
            unsupported(f"client test case {case!r}")
        try:
            asyncio.run(run_client(mapped))
        except Exception as e:  # the runner reads the reason from stderr
            print(f"aioquic peer: client failed: {e!r}", file=sys.stderr)
            sys.exit(1)
    else:
        unsupported(f"ROLE {role!r}")


if __name__ == "__main__":
    main()
