#!/usr/bin/env python3
"""aioquic peer for the quicpro Extended CONNECT / HTTP Datagram interop tests
(RFC 9220, RFC 9297, RFC 9221; ALPN h3).

aioquic's H3Connection(enable_webtransport=True) sends SETTINGS
ENABLE_CONNECT_PROTOCOL=1 and H3_DATAGRAM=1, sends HTTP datagrams with
send_datagram(stream_id, data) and reports DatagramReceived; QUIC DATAGRAM
frames need QuicConfiguration(max_datagram_frame_size=...).

Subcommands:
  server --port 0 --cert cert.pem --key key.pem
     Answers an Extended CONNECT (any :protocol) with 200, echoes every HTTP
     datagram on the same stream, echoes the CONNECT stream's DATA bytes
     (a tunnel echo), ends its side when the client ends its side.
  client --port P --cafile cert.pem --count N --capsules K [--protocol P]
     Waits for the server's SETTINGS (RFC 9220 §3), opens an Extended
     CONNECT, sends N HTTP datagrams (a window of WINDOW unanswered ones;
     one lost on the way is sent again after RESEND_AFTER) and checks each
     echo byte for byte; then sends K DATAGRAM capsules (RFC 9297 §3.5) and
     one capsule of an unknown type in DATA and expects the K back, in order.

Datagram i of side `tag`: tag byte, i (u32 BE), length (u16 BE), then bytes
(j*31 + i + tag) & 0xff for j = 7.. (the Rust test uses the same function).

Output: "RESULT key=value ..." lines on stdout ("LISTENING port=N" from the
server once bound). Exit status 0 only when everything checked out. Each
run stops by itself after --deadline seconds (SIGALRM backstop).
"""

import argparse
import asyncio
import signal
import sys
import time

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, DatagramReceived, HeadersReceived
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration

WINDOW = 32
RESEND_AFTER = 0.25
UNKNOWN_CAPSULE = 0x2843


def result(**kv):
    parts = []
    for k, v in kv.items():
        if isinstance(v, bool):
            v = int(v)
        parts.append(f"{k}={str(v).replace(' ', '_')}")
    print("RESULT " + " ".join(parts), flush=True)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def dgram(tag, seq):
    n = 8 + (seq * 37) % 1000
    out = bytearray([tag]) + seq.to_bytes(4, "big") + n.to_bytes(2, "big")
    out += bytes(((j * 31 + seq + tag) & 0xFF) for j in range(7, n))
    return bytes(out)


def capsule_value(i):
    return bytes(((i * 7 + j) & 0xFF) for j in range((i * 53) % 900))


def capsule(ctype, value):
    return encode_uint_var(ctype) + encode_uint_var(len(value)) + value


def read_varint(buf, pos):
    if pos >= len(buf):
        return None
    first = buf[pos]
    length = 1 << (first >> 6)
    if pos + length > len(buf):
        return None
    value = first & 0x3F
    for b in buf[pos + 1 : pos + length]:
        value = (value << 8) | b
    return value, pos + length


def parse_capsules(buf):
    """Complete capsules at the front of buf (removed from it)."""
    out = []
    while True:
        r = read_varint(buf, 0)
        if r is None:
            return out
        ctype, pos = r
        r = read_varint(buf, pos)
        if r is None:
            return out
        n, pos = r
        if pos + n > len(buf):
            return out
        out.append((ctype, bytes(buf[pos : pos + n])))
        del buf[: pos + n]


def header(headers, name):
    name = name.encode()
    for k, v in headers:
        if k == name:
            return v.decode(errors="replace")
    return None


def configuration(is_client):
    cfg = QuicConfiguration(is_client=is_client, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536)
    cfg.idle_timeout = 30.0
    return cfg


# ---------------------------------------------------------------- server


class ServerProtocol(QuicConnectionProtocol):
    done = None
    report = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = None
        self.connect_streams = {}

    def quic_event_received(self, event):
        rep = ServerProtocol.report
        if isinstance(event, events.ProtocolNegotiated):
            self.http = H3Connection(self._quic, enable_webtransport=True)
        if isinstance(event, events.ConnectionTerminated):
            rep["close_code"] = event.error_code
            ServerProtocol.done.set()
            return
        if self.http is None:
            return
        for ev in self.http.handle_event(event):
            if isinstance(ev, HeadersReceived):
                method = header(ev.headers, ":method")
                proto = header(ev.headers, ":protocol")
                rep["method"] = method
                rep["protocol"] = proto
                rep["scheme"] = header(ev.headers, ":scheme")
                rep["path"] = header(ev.headers, ":path")
                if method == "CONNECT" and proto:
                    self.connect_streams[ev.stream_id] = 0
                    self.http.send_headers(ev.stream_id, [(b":status", b"200")], end_stream=False)
                else:
                    self.http.send_headers(ev.stream_id, [(b":status", b"400")], end_stream=True)
            elif isinstance(ev, DatagramReceived):
                rep["datagrams"] = rep.get("datagrams", 0) + 1
                if ev.stream_id not in self.connect_streams:
                    rep["stray"] = rep.get("stray", 0) + 1
                self.http.send_datagram(ev.stream_id, ev.data)
            elif isinstance(ev, DataReceived):
                if ev.stream_id in self.connect_streams:
                    rep["tunnel_bytes"] = rep.get("tunnel_bytes", 0) + len(ev.data)
                    self.http.send_data(ev.stream_id, ev.data, end_stream=ev.stream_ended)
                    if ev.stream_ended:
                        rep["tunnel_closed"] = 1


async def server_main(args):
    ServerProtocol.done = asyncio.Event()
    ServerProtocol.report = {}
    cfg = configuration(False)
    cfg.load_cert_chain(args.cert, args.key)
    server = await serve(args.host, args.port, configuration=cfg, create_protocol=ServerProtocol)
    port = server._transport.get_extra_info("sockname")[1]
    print(f"LISTENING port={port}", flush=True)
    try:
        await ServerProtocol.done.wait()
    finally:
        server.close()
    rep = ServerProtocol.report
    ok = rep.get("protocol") is not None and rep.get("tunnel_closed") == 1 and rep.get("stray", 0) == 0
    result(role="server", ok=ok, **rep)
    return ok


# ---------------------------------------------------------------- client


class ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic, enable_webtransport=True)
        self.changed = asyncio.Event()
        self.status = None
        self.stream = None
        self.echoes = []
        self.tunnel = bytearray()
        self.tunnel_ended = False
        self.closed = None

    def quic_event_received(self, event):
        if isinstance(event, events.ConnectionTerminated):
            self.closed = event.error_code
        for ev in self.http.handle_event(event):
            if isinstance(ev, HeadersReceived) and ev.stream_id == self.stream:
                self.status = header(ev.headers, ":status")
            elif isinstance(ev, DatagramReceived):
                self.echoes.append((ev.stream_id, ev.data))
            elif isinstance(ev, DataReceived) and ev.stream_id == self.stream:
                self.tunnel += ev.data
                self.tunnel_ended = self.tunnel_ended or ev.stream_ended
        self.changed.set()

    async def wait(self, cond, timeout):
        end = time.monotonic() + timeout
        while not cond():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.05))
            except asyncio.TimeoutError:
                pass
        return True


async def client_main(args):
    info = {}
    problems = []
    cfg = configuration(True)
    cfg.server_name = "localhost"
    cfg.load_verify_locations(cafile=args.cafile)
    async with connect(args.host, args.port, configuration=cfg, create_protocol=ClientProtocol) as p:
        # RFC 9220 §3: Extended CONNECT only after SETTINGS_ENABLE_CONNECT_PROTOCOL=1.
        if not await p.wait(lambda: p.http.received_settings is not None, 10):
            result(role="client", ok=0, error="no_settings")
            return False
        s = p.http.received_settings
        info["peer_connect_protocol"] = s.get(0x08, 0)
        info["peer_h3_datagram"] = s.get(0x33, 0)
        if s.get(0x08) != 1 or s.get(0x33) != 1:
            problems.append("settings")
        p.stream = p._quic.get_next_available_stream_id()
        p.http.send_headers(
            p.stream,
            [
                (b":method", b"CONNECT"),
                (b":protocol", args.protocol.encode()),
                (b":scheme", b"https"),
                (b":authority", f"localhost:{args.port}".encode()),
                (b":path", b"/h3x"),
            ],
            end_stream=False,
        )
        p.transmit()
        if not await p.wait(lambda: p.status is not None, 10):
            problems.append("no_response")
        info["status"] = p.status
        # Datagrams: windowed, echoes checked byte for byte.
        sent_at = {}
        got = set()
        resends = 0
        nxt = 0
        end = time.monotonic() + args.deadline - 5
        while len(got) < args.count and time.monotonic() < end and p.closed is None:
            now = time.monotonic()
            while nxt < args.count and len(sent_at) < WINDOW:
                p.http.send_datagram(p.stream, dgram(ord("a"), nxt))
                sent_at[nxt] = now
                nxt += 1
            for seq, t in list(sent_at.items()):
                if now - t > RESEND_AFTER:
                    p.http.send_datagram(p.stream, dgram(ord("a"), seq))
                    sent_at[seq] = now
                    resends += 1
            p.transmit()
            await p.wait(lambda: len(p.echoes) > 0, 0.05)
            for sid, data in p.echoes:
                if sid != p.stream or len(data) < 7:
                    problems.append(f"bad_echo_stream{sid}")
                    continue
                seq = int.from_bytes(data[1:5], "big")
                if seq >= args.count or data != dgram(ord("a"), seq):
                    problems.append(f"corrupt_echo{seq}")
                    continue
                got.add(seq)
                sent_at.pop(seq, None)
            p.echoes.clear()
        info["datagrams_echoed"] = len(got)
        info["resends"] = resends
        if len(got) != args.count:
            problems.append(f"echoed_{len(got)}_of_{args.count}")
        # Capsules in DATA; the unknown one must be skipped by the peer.
        data = bytearray()
        for i in range(args.capsules):
            if i == args.capsules // 2:
                data += capsule(UNKNOWN_CAPSULE, b"an extension the peer does not know")
            data += capsule(0x00, capsule_value(i))
        p.http.send_data(p.stream, bytes(data), end_stream=False)
        p.transmit()
        back = []
        buf = p.tunnel

        def enough():
            back.extend(parse_capsules(buf))
            return len(back) >= args.capsules

        if not await p.wait(enough, 10):
            problems.append(f"capsules_back_{len(back)}")
        for i, (ctype, value) in enumerate(back):
            if ctype != 0 or value != capsule_value(i):
                problems.append(f"capsule{i}_mismatch")
                break
        info["capsules_back"] = len(back)
        # End the tunnel; the server ends its side too.
        p.http.send_data(p.stream, b"", end_stream=True)
        p.transmit()
        if not await p.wait(lambda: p.tunnel_ended, 10):
            problems.append("tunnel_not_ended")
        p.close(error_code=0x100)
    ok = not problems
    result(role="client", ok=ok, problems=",".join(problems) or "none", **info)
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="role", required=True)
    c = sub.add_parser("client")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--cafile", required=True)
    c.add_argument("--count", type=int, default=200)
    c.add_argument("--capsules", type=int, default=20)
    c.add_argument("--protocol", default="webtransport")
    c.add_argument("--deadline", type=float, default=60.0)
    s = sub.add_parser("server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--deadline", type=float, default=60.0)
    args = p.parse_args()

    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(int(args.deadline) + 5)
    coro = client_main(args) if args.role == "client" else server_main(args)
    try:
        ok = asyncio.run(asyncio.wait_for(coro, args.deadline))
    except asyncio.TimeoutError:
        result(role=args.role, ok=0, error="deadline")
        sys.exit(3)
    except Exception as e:  # noqa: BLE001 - reported as a failure
        result(role=args.role, ok=0, error=type(e).__name__, detail=str(e)[:200])
        raise
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
