#!/usr/bin/env python3
"""aioquic HTTP/3 peer for the quicpro HTTP/3 interop tests (ALPN h3).

Routes (the same on every test server):
  GET /bytes/<n>  -> 200, n pattern bytes (content-length n)
  POST /sha256    -> 200, sha256 hex of the request body
  GET /trailers   -> 200, a small body, then trailers
                     x-body-sha256: <sha256 hex of the body>, x-trailer-test: done
  anything else   -> 404
Pattern byte i is ((i*7 + i//251) & 0xff).

Subcommands:
  client --port P --cafile cert.pem --case CASE [--count N] [--size N]
     CASE: sequential | concurrent | download | upload | trailers | goaway |
           priorities (RFC 9218: a `priority` header, then a PRIORITY_UPDATE
           frame lowering the first response while an urgent second one runs)
  server --port 0 --cert cert.pem --key key.pem [--goaway-after N]

Output: machine-readable lines on stdout, "RESULT key=value ..." (and
"LISTENING port=N" from the server once bound). The exit status is 0 only
when everything checked out. Every run stops by itself after --deadline
seconds (and a SIGALRM backstop a few seconds later).

Bodies stream: a sender tops up aioquic's stream buffer to at most
HIGH_WATER unacknowledged bytes, and receivers hash chunks as they come, so
no side holds a whole 100 MB body.
"""

import argparse
import asyncio
import hashlib
import signal
import sys
import time

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection, encode_frame
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration

PERIOD = 251 * 256
BLOCK = bytes(((i * 7 + i // 251) & 0xFF) for i in range(PERIOD * 16))
TRAILERS_BODY = b"a small body followed by trailers\n"
HIGH_WATER = 4 * 1024 * 1024
CHUNK = 256 * 1024
H3_NO_ERROR = 0x100


def pattern_chunk(offset, n):
    """Up to n pattern bytes starting at `offset` (at most ~1 MB)."""
    start = offset % PERIOD
    return BLOCK[start : start + min(n, len(BLOCK) - start)]


def pattern(n):
    out = bytearray()
    while len(out) < n:
        out += pattern_chunk(len(out), n - len(out))
    return bytes(out)


_hash_cache = {}


def pattern_sha256(n):
    if n not in _hash_cache:
        h = hashlib.sha256()
        off = 0
        while off < n:
            c = pattern_chunk(off, n - off)
            h.update(c)
            off += len(c)
        _hash_cache[n] = h.hexdigest()
    return _hash_cache[n]


def result(**kv):
    parts = []
    for k, v in kv.items():
        if isinstance(v, bool):
            v = int(v)
        v = str(v).replace(" ", "_")
        parts.append(f"{k}={v}")
    print("RESULT " + " ".join(parts), flush=True)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def header(headers, name):
    name = name.encode()
    for k, v in headers:
        if k == name:
            return v.decode(errors="replace")
    return None


def read_varint(buf, pos):
    """QUIC variable-length integer at buf[pos:]; (value, new pos) or None."""
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


class ControlWatcher:
    """Reads the peer's HTTP/3 control stream beside aioquic's H3Connection:
    aioquic 1.x drops GOAWAY without telling the application, so the frames
    are parsed here from the same StreamDataReceived events."""

    def __init__(self, peer_uni_mod):
        self.peer_uni_mod = peer_uni_mod  # 3: server-initiated uni streams
        self.buffers = {}  # stream id -> unparsed bytes
        self.kind = {}  # stream id -> "control" | "other"
        self.goaway = []  # GOAWAY ids in order

    def feed(self, stream_id, data):
        """Returns True when this data carried a GOAWAY frame."""
        if stream_id % 4 != self.peer_uni_mod or self.kind.get(stream_id) == "other":
            return False
        buf = self.buffers.setdefault(stream_id, bytearray())
        buf += data
        if stream_id not in self.kind:
            # The stream type comes first (RFC 9114 §6.2); 0x00 is control.
            r = read_varint(buf, 0)
            if r is None:
                return False
            stype, pos = r
            if stype != 0:
                self.kind[stream_id] = "other"
                del self.buffers[stream_id]
                return False
            self.kind[stream_id] = "control"
            del buf[:pos]
        got_goaway = False
        while True:
            r = read_varint(buf, 0)
            if r is None:
                break
            ftype, pos = r
            r = read_varint(buf, pos)
            if r is None:
                break
            flen, pos = r
            if pos + flen > len(buf):
                break
            payload = bytes(buf[pos : pos + flen])
            del buf[: pos + flen]
            if ftype == FrameType.GOAWAY:
                v = read_varint(payload, 0)
                if v is not None:
                    self.goaway.append(v[0])
                    got_goaway = True
        return got_goaway


class BodySender:
    """Streams n pattern bytes (or fixed bytes) on one stream, topping up
    aioquic's send buffer to HIGH_WATER unacknowledged bytes."""

    def __init__(self, quic, http, stream_id, n=None, data=None, trailers=None):
        self.quic = quic
        self.http = http
        self.sid = stream_id
        self.n = n if data is None else len(data)
        self.data = data
        self.sent = 0
        self.trailers = trailers
        self.done = False

    def buffered(self):
        s = self.quic._streams.get(self.sid)
        if s is None:
            return 0
        return s.sender._buffer_stop - s.sender._buffer_start

    def pump(self):
        while not self.done and self.buffered() < HIGH_WATER:
            left = self.n - self.sent
            if self.data is not None:
                chunk = self.data[self.sent : self.sent + CHUNK]
            else:
                chunk = pattern_chunk(self.sent, min(left, CHUNK))
            self.sent += len(chunk)
            last = self.sent >= self.n
            self.http.send_data(self.sid, chunk, end_stream=last and not self.trailers)
            if last:
                if self.trailers:
                    self.http.send_headers(self.sid, self.trailers, end_stream=True)
                self.done = True


# ---------------------------------------------------------------- server


class ServerState:
    def __init__(self, expected, goaway_after):
        self.expected = expected
        self.goaway_after = goaway_after
        self.finished = 0
        self.failures = 0
        self.done = asyncio.Event()


class H3ServerProtocol(QuicConnectionProtocol):
    state = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = None
        self.streams = {}  # sid -> dict
        self.senders = {}
        self.requests = 0
        self.responses = 0
        self.request_trailers = []
        self.sha256_answers = []
        self.upload_rates = []
        self.goaway_sent = None
        self.max_request_id = None
        self.bytes_out = 0
        self.errors = []
        self.reported = False
        self.alpn = None

    def transmit(self):
        self._pump()
        super().transmit()

    def _pump(self):
        for sid in list(self.senders):
            s = self.senders[sid]
            try:
                s.pump()
            except Exception as e:  # noqa: BLE001 - reported
                self.errors.append(f"send_{sid}_{type(e).__name__}")
                s.done = True
            if s.done:
                self.bytes_out += s.sent
                del self.senders[sid]
                self.responses += 1

    def quic_event_received(self, event):
        if isinstance(event, events.ProtocolNegotiated):
            self.alpn = event.alpn_protocol
            self.http = H3Connection(self._quic)
        if isinstance(event, events.ConnectionTerminated):
            self._report(event)
            return
        if isinstance(event, events.StreamReset):
            self.errors.append(f"reset_{event.stream_id}_{event.error_code}")
        if self.http is None:
            return
        try:
            for h3ev in self.http.handle_event(event):
                self._on_h3(h3ev)
        except Exception as e:  # noqa: BLE001 - reported
            self.errors.append(f"h3_{type(e).__name__}")

    def _respond(self, sid, status, headers, n=None, data=None, trailers=None):
        self.http.send_headers(sid, [(b":status", str(status).encode())] + headers, end_stream=False)
        self.senders[sid] = BodySender(self._quic, self.http, sid, n=n, data=data, trailers=trailers)

    def _on_h3(self, ev):
        sid = ev.stream_id
        if isinstance(ev, HeadersReceived):
            st = self.streams.get(sid)
            if st is not None:
                # A second header section on a request: trailers.
                self.request_trailers.append(
                    ";".join(f"{k.decode()}:{v.decode()}" for k, v in ev.headers)
                )
                if ev.stream_ended:
                    self._request_end(sid)
                return
            method = header(ev.headers, ":method")
            path = header(ev.headers, ":path") or ""
            self.requests += 1
            self.max_request_id = sid if self.max_request_id is None else max(sid, self.max_request_id)
            st = {"method": method, "path": path, "hash": hashlib.sha256(), "got": 0, "t0": time.monotonic()}
            self.streams[sid] = st
            if method == "GET" and path.startswith("/bytes/") and path[7:].isdigit():
                n = int(path[7:])
                self._respond(sid, 200, [(b"content-length", str(n).encode())], n=n)
            elif method == "GET" and path == "/trailers":
                trailers = [
                    (b"x-body-sha256", hashlib.sha256(TRAILERS_BODY).hexdigest().encode()),
                    (b"x-trailer-test", b"done"),
                ]
                self._respond(sid, 200, [(b"content-type", b"text/plain")], data=TRAILERS_BODY, trailers=trailers)
            elif method == "POST" and path == "/sha256":
                st["upload"] = True
            else:
                self._respond(sid, 404, [(b"content-length", b"10")], data=b"not found\n")
            if self.state.goaway_after and self.requests == self.state.goaway_after and self.goaway_sent is None:
                # aioquic has no GOAWAY API: write the frame on its control
                # stream (RFC 9114 §5.2: requests below the ID are served).
                self.goaway_sent = self.max_request_id + 4
                self._quic.send_stream_data(
                    self.http._local_control_stream_id,
                    encode_frame(FrameType.GOAWAY, encode_uint_var(self.goaway_sent)),
                )
            if ev.stream_ended:
                self._request_end(sid)
            self._pump()
        elif isinstance(ev, DataReceived):
            st = self.streams.get(sid)
            if st is None:
                return
            st["hash"].update(ev.data)
            st["got"] += len(ev.data)
            if ev.stream_ended:
                self._request_end(sid)
                self._pump()

    def _request_end(self, sid):
        st = self.streams[sid]
        if st.get("upload") and not st.get("answered"):
            st["answered"] = True
            hexd = st["hash"].hexdigest()
            secs = max(time.monotonic() - st["t0"], 1e-6)
            self.sha256_answers.append(f"{st['got']}:{hexd[:16]}")
            self.upload_rates.append(round(st["got"] / secs / 1048576, 1))
            self._respond(sid, 200, [(b"content-length", str(len(hexd)).encode())], data=hexd.encode())

    def _report(self, event):
        if self.reported:
            return
        self.reported = True
        st = self.state
        clean = event.error_code in (0, H3_NO_ERROR) and not self.errors
        result(
            conn=st.finished + 1,
            ok=clean,
            alpn=self.alpn,
            requests=self.requests,
            responses=self.responses,
            bytes_out=self.bytes_out,
            request_trailers="|".join(self.request_trailers) or "none",
            sha256_answers=",".join(self.sha256_answers) or "none",
            upload_mib_s=",".join(map(str, self.upload_rates)) or "none",
            goaway_sent=self.goaway_sent if self.goaway_sent is not None else "none",
            close_code=event.error_code,
            errors=",".join(self.errors) or "none",
        )
        st.finished += 1
        if not clean:
            st.failures += 1
        if st.expected and st.finished >= st.expected:
            st.done.set()


async def server_main(args):
    st = ServerState(args.connections, args.goaway_after)
    H3ServerProtocol.state = st
    cfg = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    cfg.load_cert_chain(args.cert, args.key)
    cfg.max_data = 32 * 1024 * 1024
    cfg.max_stream_data = 16 * 1024 * 1024
    cfg.max_datagram_size = 1452
    cfg.idle_timeout = 30.0
    server = await serve(args.host, args.port, configuration=cfg, create_protocol=H3ServerProtocol)
    port = server._transport.get_extra_info("sockname")[1]
    print(f"LISTENING port={port}", flush=True)
    try:
        await st.done.wait()
    finally:
        server.close()
    result(role="server", ok=st.failures == 0, connections=st.finished, failures=st.failures)
    return st.failures == 0


# ---------------------------------------------------------------- client


class Request:
    def __init__(self, loop, method, path, keep):
        self.method = method
        self.path = path
        self.keep = keep  # keep the body bytes (small bodies)
        self.fut = loop.create_future()
        self.status = None
        self.headers = None
        self.trailers = None
        self.body = bytearray()
        self.hash = hashlib.sha256()
        self.got = 0
        self.t0 = time.monotonic()
        self.t1 = None


class H3ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self.requests = {}
        self.senders = {}
        self.control = ControlWatcher(3)
        self.goaway_at_done = None  # responses complete when GOAWAY came
        self.goaway_at = None

    def transmit(self):
        for sid in list(self.senders):
            s = self.senders[sid]
            s.pump()
            if s.done:
                del self.senders[sid]
        super().transmit()

    def priority_update(self, sid, value):
        """A PRIORITY_UPDATE frame (RFC 9218 §7.1, type 0xf0700) for request
        stream `sid` on our control stream: aioquic has no API for it."""
        frame = encode_frame(0xF0700, encode_uint_var(sid) + value.encode())
        self._quic.send_stream_data(self.http._local_control_stream_id, frame)
        self.transmit()

    def request(self, method, path, keep=True, upload=None, trailers=None, priority=None):
        sid = self._quic.get_next_available_stream_id()
        req = Request(self._loop, method, path, keep)
        self.requests[sid] = req
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
            (b"user-agent", b"aioquic-h3-interop"),
        ]
        if upload is not None:
            headers.append((b"content-length", str(upload).encode()))
        if priority is not None:
            headers.append((b"priority", priority.encode()))
        self.http.send_headers(sid, headers, end_stream=upload is None)
        if upload is not None:
            self.senders[sid] = BodySender(self._quic, self.http, sid, n=upload, trailers=trailers)
        self.transmit()
        return sid, req

    def quic_event_received(self, event):
        if isinstance(event, events.StreamDataReceived):
            if self.control.feed(event.stream_id, event.data) and self.goaway_at is None:
                self.goaway_at = time.monotonic()
                self.goaway_at_done = sum(1 for r in self.requests.values() if r.fut.done())
                log(f"client: GOAWAY {self.control.goaway[-1]} with {self.goaway_at_done} responses complete")
        elif isinstance(event, events.StreamReset):
            req = self.requests.get(event.stream_id)
            if req is not None and not req.fut.done():
                req.fut.set_exception(RuntimeError(f"stream reset {event.error_code}"))
        elif isinstance(event, events.ConnectionTerminated):
            for req in self.requests.values():
                if not req.fut.done():
                    req.fut.set_exception(RuntimeError(f"connection terminated {event.error_code} {event.reason_phrase}"))
        for ev in self.http.handle_event(event):
            req = self.requests.get(ev.stream_id)
            if req is None:
                continue
            if isinstance(ev, HeadersReceived):
                if req.headers is None:
                    req.headers = ev.headers
                    req.status = header(ev.headers, ":status")
                else:
                    req.trailers = ev.headers
            elif isinstance(ev, DataReceived):
                req.hash.update(ev.data)
                req.got += len(ev.data)
                if req.keep:
                    req.body += ev.data
            if getattr(ev, "stream_ended", False) and not req.fut.done():
                req.t1 = time.monotonic()
                req.fut.set_result(True)


def client_configuration(args):
    cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    cfg.server_name = "localhost"
    cfg.load_verify_locations(cafile=args.cafile)
    cfg.max_data = 32 * 1024 * 1024
    cfg.max_stream_data = 16 * 1024 * 1024
    cfg.max_datagram_size = 1452
    cfg.idle_timeout = 30.0
    return cfg


async def client_main(args):
    t0 = time.monotonic()
    info = {}
    problems = []
    async with connect(
        args.host, args.port, configuration=client_configuration(args), create_protocol=H3ClientProtocol
    ) as proto:
        info["alpn"] = proto._quic.tls.alpn_negotiated
        case = args.case
        if case == "sequential":
            for i in range(args.count):
                n = 1 + (i * 37) % 2000
                _, req = proto.request("GET", f"/bytes/{n}")
                await req.fut
                if req.status != "200" or bytes(req.body) != pattern(n):
                    problems.append(f"req{i}_status{req.status}_len{len(req.body)}")
            info["requests"] = args.count
        elif case == "concurrent":
            started = []
            for i in range(args.count):
                n = 1000 + i * 13
                started.append((n, proto.request("GET", f"/bytes/{n}")[1]))
            for n, req in started:
                try:
                    await req.fut
                except Exception as e:  # noqa: BLE001 - reported
                    problems.append(f"{n}_{e}")
                    continue
                if req.status != "200" or bytes(req.body) != pattern(n):
                    problems.append(f"len{n}_status{req.status}_got{len(req.body)}")
            info["requests"] = args.count
        elif case == "download":
            _, req = proto.request("GET", f"/bytes/{args.size}", keep=False)
            await req.fut
            secs = max(req.t1 - req.t0, 1e-6)
            digest = req.hash.hexdigest()
            if req.status != "200" or req.got != args.size or digest != pattern_sha256(args.size):
                problems.append(f"status{req.status}_got{req.got}_sha{digest[:16]}")
            info.update(bytes=req.got, sha256=digest, secs=round(secs, 2), mib_s=round(req.got / secs / 1048576, 1))
        elif case == "upload":
            _, req = proto.request("POST", "/sha256", upload=args.size)
            await req.fut
            secs = max(req.t1 - req.t0, 1e-6)
            answer = bytes(req.body).decode(errors="replace")
            if req.status != "200" or answer != pattern_sha256(args.size):
                problems.append(f"status{req.status}_answer{answer[:70]}")
            info.update(bytes=args.size, answer=answer, secs=round(secs, 2), mib_s=round(args.size / secs / 1048576, 1))
        elif case == "priorities":
            # The first response (u=5) is under way when the second (u=1)
            # is asked for and the first is lowered to u=7: the second must
            # complete first.
            n = args.size
            sid_a, a = proto.request("GET", f"/bytes/{n}", keep=False, priority="u=5")
            while a.got < 100_000 and not a.fut.done():
                await asyncio.sleep(0.002)
            _, b = proto.request("GET", f"/bytes/{n}", keep=False, priority="u=1")
            proto.priority_update(sid_a, "u=7")
            await asyncio.gather(a.fut, b.fut)
            first = "second" if b.t1 < a.t1 else "first"
            for name, r in (("first", a), ("second", b)):
                if r.status != "200" or r.got != n or r.hash.hexdigest() != pattern_sha256(n):
                    problems.append(f"{name}_status{r.status}_got{r.got}")
            if first != "second":
                problems.append("first_response_completed_first")
            info.update(completed_first=first, a_got_before_b=100_000)
        elif case == "trailers":
            _, req = proto.request("GET", "/trailers")
            await req.fut
            body = bytes(req.body)
            t = {k.decode(): v.decode() for k, v in (req.trailers or [])}
            if req.status != "200" or body != TRAILERS_BODY:
                problems.append(f"status{req.status}_body{len(body)}")
            if t.get("x-body-sha256") != hashlib.sha256(body).hexdigest() or t.get("x-trailer-test") != "done":
                problems.append(f"trailers_{t}")
            info["response_trailers"] = ";".join(f"{k}:{v}" for k, v in t.items()) or "none"
            # Request trailers after an upload body.
            n = 10000
            _, req = proto.request(
                "POST", "/sha256", upload=n,
                trailers=[(b"x-request-trailer", b"yes"), (b"x-upload-sha256", pattern_sha256(n).encode())],
            )
            await req.fut
            if bytes(req.body).decode(errors="replace") != pattern_sha256(n):
                problems.append("post_with_trailers_answer")
            info["request_trailers_sent"] = 2
        elif case == "goaway":
            started = []
            for i in range(args.count):
                started.append(proto.request("GET", f"/bytes/{args.size}", keep=False))
            for sid, req in started:
                try:
                    await req.fut
                except Exception as e:  # noqa: BLE001 - reported
                    problems.append(f"s{sid}_{e}")
                    continue
                if req.status != "200" or req.hash.hexdigest() != pattern_sha256(args.size):
                    problems.append(f"s{sid}_status{req.status}_got{req.got}")
            # Wait (bounded) for the GOAWAY if the responses beat it.
            end = time.monotonic() + 5
            while not proto.control.goaway and time.monotonic() < end:
                await asyncio.sleep(0.01)
            if not proto.control.goaway:
                problems.append("no_goaway")
            else:
                gid = proto.control.goaway[-1]
                info["goaway_id"] = gid
                info["goaway_at_done"] = proto.goaway_at_done
                if any(sid >= gid for sid, _ in started):
                    problems.append("request_at_or_above_goaway_id")
            info["requests"] = args.count
        else:
            raise SystemExit(f"unknown case {case}")
        proto.close(error_code=H3_NO_ERROR, reason_phrase="done")
    info["elapsed_ms"] = int((time.monotonic() - t0) * 1000)
    ok = not problems
    result(case=args.case, ok=ok, problems=",".join(problems)[:400] or "none", **info)
    return ok


# ---------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="role", required=True)
    c = sub.add_parser("client")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--cafile", required=True)
    c.add_argument(
        "--case", required=True, choices=["sequential", "concurrent", "download", "upload", "trailers", "goaway", "priorities"]
    )
    c.add_argument("--count", type=int, default=1000)
    c.add_argument("--size", type=int, default=100 * 1024 * 1024)
    c.add_argument("--deadline", type=float, default=100.0)
    s = sub.add_parser("server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--connections", type=int, default=1, help="exit after this many connections ended")
    s.add_argument("--goaway-after", type=int, default=0, help="send GOAWAY once this many requests arrived")
    s.add_argument("--deadline", type=float, default=100.0)
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
        result(role=args.role, ok=0, error=type(e).__name__, detail=str(e)[:200])
        raise
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
