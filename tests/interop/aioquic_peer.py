#!/usr/bin/env python3
"""aioquic peer for the quicpro interop tests (raw QUIC, ALPN quicpro-interop).

The protocol (the same for every peer):
  download: the client opens a bidi stream, sends "GET <n>\\n" + FIN; the
            server answers n bytes of the pattern and FIN.
  upload:   the client sends "PUT <n>\\n", n bytes of the pattern and FIN; the
            server answers "OK <n> <sha256 hex>\\n" and FIN.
Pattern byte i is ((i*7 + i//251) & 0xff).

Subcommands:
  client --port P --cafile cert.pem --case CASE [...]
  server --port 0 --cert cert.pem --key key.pem [--connections N]

Output: machine-readable lines on stdout, "RESULT key=value ..." (and
"LISTENING port=N" from the server once bound). The exit status is 0 only
when everything checked out. Every run stops by itself after --deadline
seconds (and a SIGALRM backstop a few seconds later).
"""

import argparse
import asyncio
import hashlib
import signal
import sys
import time

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic import crypto as quic_crypto
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.tls import Epoch

ALPN = "quicpro-interop"
MAX_REQUEST_LINE = 64

# The pattern repeats every 251*256 bytes: i*7 mod 256 has period 256 and
# i//251 adds 256 (= 0 mod 256) after 251*256 bytes.
PERIOD = 251 * 256
PERIOD_BYTES = bytes(((i * 7 + i // 251) & 0xFF) for i in range(PERIOD))


def pattern_chunks(n):
    """The first n bytes of the pattern, in chunks of at most PERIOD bytes."""
    off = 0
    while off < n:
        k = min(PERIOD, n - off)
        yield PERIOD_BYTES[:k]
        off += k


_hash_cache = {}


def pattern_sha256(n):
    if n not in _hash_cache:
        h = hashlib.sha256()
        for c in pattern_chunks(n):
            h.update(c)
        _hash_cache[n] = h.hexdigest()
    return _hash_cache[n]


# Count key updates per connection: aioquic has no counter of its own, so
# wrap CryptoPair._update_key (called with "local_update" for updates we
# start and "remote_update" for ones the peer starts).
_original_update_key = quic_crypto.CryptoPair._update_key


def _counting_update_key(self, trigger):
    counts = self.__dict__.setdefault("quicpro_key_updates", {})
    counts[trigger] = counts.get(trigger, 0) + 1
    _original_update_key(self, trigger)


quic_crypto.CryptoPair._update_key = _counting_update_key


def key_updates(quic):
    pair = quic._cryptos.get(Epoch.ONE_RTT)
    counts = getattr(pair, "quicpro_key_updates", {}) if pair is not None else {}
    return counts.get("local_update", 0), counts.get("remote_update", 0)


def result(**kv):
    parts = []
    for k, v in kv.items():
        if isinstance(v, bool):
            v = int(v)
        parts.append(f"{k}={v}")
    print("RESULT " + " ".join(parts), flush=True)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def split(total, parts):
    """total bytes over `parts` streams, the remainder on the first ones."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


# ---------------------------------------------------------------- client


class ClientProtocol(QuicConnectionProtocol):
    """Drives GET/PUT streams directly on the QuicConnection events."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requests = {}  # stream id -> dict
        self.downloaded = 0
        self.key_update_after = None
        self.key_update_requested = False
        self.handshake = None  # the HandshakeCompleted event

    def _start(self, kind, n, payload_first):
        sid = self._quic.get_next_available_stream_id()
        fut = self._loop.create_future()
        req = {"kind": kind, "n": n, "fut": fut, "buf": bytearray(), "hash": hashlib.sha256(), "got": 0}
        self.requests[sid] = req
        self._quic.send_stream_data(sid, payload_first, end_stream=(kind == "get"))
        if kind == "put":
            chunks = list(pattern_chunks(n))
            for i, c in enumerate(chunks):
                self._quic.send_stream_data(sid, c, end_stream=(i == len(chunks) - 1))
            if not chunks:
                self._quic.send_stream_data(sid, b"", end_stream=True)
        self.transmit()
        return sid, fut

    def get(self, n):
        return self._start("get", n, f"GET {n}\n".encode())

    def put(self, n):
        return self._start("put", n, f"PUT {n}\n".encode())

    def quic_event_received(self, event):
        if isinstance(event, events.HandshakeCompleted):
            self.handshake = event
        elif isinstance(event, events.StreamDataReceived):
            req = self.requests.get(event.stream_id)
            if req is None:
                return
            if req["kind"] == "get":
                req["hash"].update(event.data)
                req["got"] += len(event.data)
                self.downloaded += len(event.data)
                if (
                    self.key_update_after is not None
                    and not self.key_update_requested
                    and self.downloaded >= self.key_update_after
                ):
                    # Mid-transfer key update (RFC 9001 §6).
                    self.key_update_requested = True
                    self._quic.request_key_update()
                    log(f"client: requested key update after {self.downloaded} bytes")
            else:
                req["buf"] += event.data
                if len(req["buf"]) > 200:
                    self._fail(req, "upload answer too long")
                    return
            if event.end_stream and not req["fut"].done():
                req["fut"].set_result(True)
        elif isinstance(event, events.StreamReset):
            req = self.requests.get(event.stream_id)
            if req is not None:
                self._fail(req, f"stream reset {event.error_code}")
        elif isinstance(event, events.ConnectionTerminated):
            for req in self.requests.values():
                self._fail(req, f"connection terminated {event.error_code} {event.reason_phrase}")

    def _fail(self, req, why):
        if not req["fut"].done():
            req["fut"].set_exception(RuntimeError(why))


def check_request(req):
    """Returns (ok, detail) for a finished request."""
    if req["kind"] == "get":
        digest = req["hash"].hexdigest()
        ok = req["got"] == req["n"] and digest == pattern_sha256(req["n"])
        return ok, f"got={req['got']} sha256={digest}"
    line = bytes(req["buf"]).decode(errors="replace").strip()
    ok = line == f"OK {req['n']} {pattern_sha256(req['n'])}"
    return ok, f"answer={line.replace(' ', '_')}"


async def run_requests(proto, downloads, uploads):
    """Runs GETs and PUTs in parallel; returns (all_ok, bytes_down, bytes_up)."""
    started = []
    for n in downloads:
        started.append(proto.get(n))
    for n in uploads:
        started.append(proto.put(n))
    all_ok = True
    for sid, fut in started:
        try:
            await fut
            ok, detail = check_request(proto.requests[sid])
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            ok, detail = False, f"error={str(e).replace(' ', '_')}"
        req = proto.requests[sid]
        result(stream=sid, kind=req["kind"], n=req["n"], ok=ok, detail=detail)
        all_ok &= ok
    return all_ok, sum(downloads), sum(uploads)


def client_configuration(args, ticket=None):
    cfg = QuicConfiguration(is_client=True, alpn_protocols=[ALPN])
    cfg.server_name = "localhost"
    cfg.load_verify_locations(cafile=args.cafile)
    cfg.max_data = 32 * 1024 * 1024
    cfg.max_stream_data = 16 * 1024 * 1024
    cfg.max_datagram_size = 1350
    cfg.idle_timeout = 30.0
    if ticket is not None:
        cfg.session_ticket = ticket
    return cfg


async def client_main(args):
    tickets = []

    def store_ticket(t):
        tickets.append(t)

    t0 = time.monotonic()
    ok = True
    info = {}

    async def one_connection(ticket, early, downloads, uploads, key_update_after=None):
        cfg = client_configuration(args, ticket)
        async with connect(
            args.host,
            args.port,
            configuration=cfg,
            create_protocol=ClientProtocol,
            session_ticket_handler=store_ticket,
            wait_connected=not early,
        ) as proto:
            proto.key_update_after = key_update_after
            sent_early = False
            if early:
                # Nothing has been sent yet: the request goes out with the
                # ClientHello, in 0-RTT packets when the ticket allows it.
                zero_rtt = proto._quic._cryptos.get(Epoch.ZERO_RTT)
                sent_early = zero_rtt is not None and zero_rtt.send.is_valid()
            t = time.monotonic()
            good, down, up = await run_requests(proto, downloads, uploads)
            secs = max(time.monotonic() - t, 1e-6)
            # Not proto.wait_connected(): aioquic only marks the protocol
            # connected when a waiter existed at HandshakeCompleted, which
            # is not the case once requests already ran to completion.
            while proto.handshake is None and not proto._closed.is_set():
                await asyncio.sleep(0.005)
            hs = proto.handshake
            local_ku, remote_ku = key_updates(proto._quic)
            conn_info = {
                "alpn": hs.alpn_protocol if hs else None,
                "resumed": bool(hs and hs.session_resumed),
                "early_data_accepted": bool(hs and hs.early_data_accepted),
                "tls_resumed": bool(proto._quic.tls.session_resumed),
                "tls_early_data_accepted": bool(proto._quic.tls.early_data_accepted),
                "sent_0rtt": sent_early,
                "key_updates_local": local_ku,
                "key_updates_remote": remote_ku,
                "mbps": round((down + up) * 8 / secs / 1e6, 1),
                "transfer_ms": int(secs * 1000),
            }
            proto.close(error_code=0, reason_phrase="done")
            return good, conn_info

    async def wait_ticket():
        end = time.monotonic() + 5
        while not tickets and time.monotonic() < end:
            await asyncio.sleep(0.01)

    case = args.case
    if case == "handshake":
        good, c = await one_connection(None, False, [1000], [1000])
        ok &= good and c["alpn"] == ALPN
        info.update(c)
    elif case in ("transfer", "keyupdate"):
        ku = args.key_update_after if case == "keyupdate" else None
        good, c = await one_connection(
            None, False, split(args.download, args.streams), split(args.upload, args.streams), ku
        )
        ok &= good
        if case == "keyupdate":
            ok &= c["key_updates_local"] >= 1
            if args.expect_remote_key_update:
                ok &= c["key_updates_remote"] >= 1
        info.update(c)
    elif case in ("resume", "zerortt"):
        good, first = await one_connection(None, False, [1000], [1000])
        ok &= good and not first["resumed"]
        # The ticket may arrive just after the handshake: keep the first
        # connection's result and wait for it here (the handler keeps it).
        await wait_ticket()
        info["tickets"] = len(tickets)
        if not tickets:
            result(case=case, ok=0, error="no_session_ticket")
            return False
        ticket = tickets[-1]
        info["ticket_early_data"] = ticket.max_early_data_size is not None
        early = case == "zerortt"
        good, second = await one_connection(ticket, early, [args.early_get], [])
        ok &= good and second["resumed"] and second["tls_resumed"]
        if early:
            ok &= second["sent_0rtt"] and second["tls_early_data_accepted"]
        info.update(second)
    else:
        raise SystemExit(f"unknown case {case}")
    info["elapsed_ms"] = int((time.monotonic() - t0) * 1000)
    result(case=case, ok=ok, **info)
    return ok


# ---------------------------------------------------------------- server


class ServerState:
    def __init__(self, expected):
        self.expected = expected
        self.finished = 0
        self.failures = 0
        self.next_id = 0
        self.tickets = {}
        self.done = asyncio.Event()


class ServerProtocol(QuicConnectionProtocol):
    state = None  # set before serving

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        st = ServerProtocol.state
        st.next_id += 1
        self.conn_id = st.next_id
        self.streams = {}
        self.handshake = None
        self.early_requests = 0
        self.requests = 0
        self.errors = []
        self.bytes_in = 0
        self.bytes_out = 0
        self.reported = False

    def quic_event_received(self, event):
        if isinstance(event, events.HandshakeCompleted):
            self.handshake = event
        elif isinstance(event, events.StreamDataReceived):
            self._on_data(event.stream_id, event.data, event.end_stream)
        elif isinstance(event, events.StreamReset):
            self.errors.append(f"reset_{event.stream_id}")
        elif isinstance(event, events.ConnectionTerminated):
            self._report(event)

    def _on_data(self, sid, data, fin):
        s = self.streams.setdefault(sid, {"line": bytearray(), "req": None, "hash": hashlib.sha256(), "got": 0})
        self.bytes_in += len(data)
        if s["req"] is None:
            s["line"] += data
            nl = s["line"].find(b"\n")
            if nl < 0:
                if len(s["line"]) > MAX_REQUEST_LINE or fin:
                    self._bad(sid, "no request line")
                return
            line = bytes(s["line"][:nl]).decode(errors="replace")
            data = bytes(s["line"][nl + 1 :])
            parts = line.split(" ")
            if len(parts) != 2 or parts[0] not in ("GET", "PUT") or not parts[1].isdigit():
                self._bad(sid, "bad request line")
                return
            s["req"] = (parts[0], int(parts[1]))
            self.requests += 1
            if self.handshake is None:
                # Data processed before the client's Finished: 0-RTT.
                self.early_requests += 1
            if parts[0] == "GET":
                n = s["req"][1]
                chunks = list(pattern_chunks(n))
                for i, c in enumerate(chunks):
                    self._quic.send_stream_data(sid, c, end_stream=(i == len(chunks) - 1))
                if not chunks:
                    self._quic.send_stream_data(sid, b"", end_stream=True)
                self.bytes_out += n
        kind, n = s["req"]
        if kind == "PUT":
            s["hash"].update(data)
            s["got"] += len(data)
            if fin:
                if s["got"] != n:
                    self.errors.append(f"put_{sid}_size_{s['got']}")
                self._quic.send_stream_data(sid, f"OK {s['got']} {s['hash'].hexdigest()}\n".encode(), end_stream=True)
        self.transmit()

    def _bad(self, sid, why):
        self.errors.append(f"{why.replace(' ', '_')}_{sid}")
        self._quic.reset_stream(sid, 1)

    def _report(self, event):
        if self.reported:
            return
        self.reported = True
        st = ServerProtocol.state
        hs = self.handshake
        local_ku, remote_ku = key_updates(self._quic)
        clean = event.error_code == 0 and not self.errors and hs is not None
        result(
            conn=self.conn_id,
            ok=clean,
            alpn=hs.alpn_protocol if hs else None,
            resumed=bool(self._quic.tls.session_resumed),
            early_data_accepted=bool(self._quic.tls.early_data_accepted),
            early_requests=self.early_requests,
            requests=self.requests,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            key_updates_local=local_ku,
            key_updates_remote=remote_ku,
            close_code=event.error_code,
            errors=",".join(self.errors) or "none",
        )
        st.finished += 1
        if not clean:
            st.failures += 1
        if st.expected and st.finished >= st.expected:
            st.done.set()


async def server_main(args):
    st = ServerState(args.connections)
    ServerProtocol.state = st
    cfg = QuicConfiguration(is_client=False, alpn_protocols=[ALPN])
    cfg.load_cert_chain(args.cert, args.key)
    cfg.max_data = 32 * 1024 * 1024
    cfg.max_stream_data = 16 * 1024 * 1024
    cfg.max_datagram_size = 1350
    cfg.idle_timeout = 30.0

    # Tickets are kept in memory; aioquic issues them (with max_early_data
    # 0xffffffff, RFC 9001 §4.6.1) only when a handler stores them.
    def store(ticket):
        st.tickets[ticket.ticket] = ticket

    def fetch(label):
        # Single use, so a replayed 0-RTT ticket is not accepted twice.
        return st.tickets.pop(label, None)

    server = await serve(
        args.host,
        args.port,
        configuration=cfg,
        create_protocol=ServerProtocol,
        session_ticket_fetcher=fetch,
        session_ticket_handler=store,
    )
    port = server._transport.get_extra_info("sockname")[1]
    print(f"LISTENING port={port}", flush=True)
    try:
        await st.done.wait()
    finally:
        server.close()
    result(role="server", ok=st.failures == 0, connections=st.finished, failures=st.failures)
    return st.failures == 0


# ---------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="role", required=True)
    c = sub.add_parser("client")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--cafile", required=True)
    c.add_argument("--case", required=True, choices=["handshake", "transfer", "resume", "zerortt", "keyupdate"])
    c.add_argument("--download", type=int, default=10 * 1024 * 1024, help="total GET bytes")
    c.add_argument("--upload", type=int, default=10 * 1024 * 1024, help="total PUT bytes")
    c.add_argument("--streams", type=int, default=4, help="GET streams and PUT streams each")
    c.add_argument("--early-get", type=int, default=100000, help="GET size on the resumed connection")
    c.add_argument("--key-update-after", type=int, default=2 * 1024 * 1024, help="downloaded bytes")
    c.add_argument("--expect-remote-key-update", action="store_true")
    c.add_argument("--deadline", type=float, default=60.0)
    s = sub.add_parser("server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--connections", type=int, default=1, help="exit after this many connections ended")
    s.add_argument("--deadline", type=float, default=90.0)
    args = p.parse_args()

    # Backstop: even a wedged event loop ends a few seconds past the deadline.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(int(args.deadline) + 5)

    coro = client_main(args) if args.role == "client" else server_main(args)
    try:
        ok = asyncio.run(asyncio.wait_for(coro, args.deadline))
    except asyncio.TimeoutError:
        result(role=args.role, ok=0, error="deadline")
        sys.exit(3)
    except Exception as e:  # noqa: BLE001 - reported as a failure
        result(role=args.role, ok=0, error=type(e).__name__, detail=str(e).replace(" ", "_")[:200])
        raise
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
