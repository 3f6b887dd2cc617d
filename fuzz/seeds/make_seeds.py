#!/usr/bin/env python3
"""One-off generator of the committed seed corpora (run from the repository
root with shared/ beside it; the output is committed, so CI never runs this).

server_endpoint/: input = 1 byte: Retry policy in bits 0-1 (0 never, 1
always, 2 under load) and transmit buffer size in bits 2-3, then datagrams
as [u16 BE length][bytes]. The datagrams are the 37
real Initial datagrams captured in shared/data/quic-initials-from-pcaps.json
(field datagram_hex): each alone, and each client flow whole, under the
policies 0 and 1; plus a few synthetic ones (unknown version, short header).

client_after_handshake/: input = mode byte, then chunks of
[control][u16 BE length][plaintext payload] (see the target's doc comment);
payloads are hand-encoded frames (RFC 9000 §19).
"""
import hashlib
import json
import os
import sys
from collections import OrderedDict

ROOT = os.path.dirname(os.path.abspath(__file__))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    ROOT, "..", "..", "..", "shared", "data", "quic-initials-from-pcaps.json")


def write(target, blob):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(blob).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob)


def dgrams(ds, high=False):
    out = b""
    for d in ds:
        n = len(d) | (0x8000 if high else 0)
        out += n.to_bytes(2, "big") + d
    return out


def server_endpoint():
    entries = json.load(open(DATA))["entries"]
    flows = OrderedDict()
    for e in entries:
        d = bytes.fromhex(e["datagram_hex"])
        write("server_endpoint", b"\x00" + dgrams([d]))
        if e["direction"] == "client->server":
            flows.setdefault((e["pcap"], e["src"], e["dst"]), []).append(d)
    for ds in flows.values():
        for policy in (0, 1):
            write("server_endpoint", bytes([policy]) + dgrams(ds))
        # Small transmit buffers (1200 and 600 bytes).
        write("server_endpoint", bytes([0x08]) + dgrams(ds))
        write("server_endpoint", bytes([0x0c]) + dgrams(ds))
    first = next(iter(flows.values()))
    # Retry under load: two connections from two addresses.
    write("server_endpoint", b"\x02" + dgrams(first) + dgrams(first, high=True))
    # Unknown version, padded to 1200: Version Negotiation (RFC 9000 §6).
    vn = bytes([0xc0]) + b"\x1a\x2a\x3a\x4a" + b"\x08" + b"\x11" * 8 + b"\x08" + b"\x22" * 8
    write("server_endpoint", b"\x00" + dgrams([vn + b"\x00" * (1200 - len(vn))]))
    # Short header for an unknown 8-byte CID: stateless reset (§10.3).
    short = bytes([0x41]) + b"\x33" * 8 + bytes(range(40))
    write("server_endpoint", b"\x00" + dgrams([short]))


def v(n):
    if n < 1 << 6:
        return n.to_bytes(1, "big")
    if n < 1 << 14:
        return (n | 0x4000).to_bytes(2, "big")
    if n < 1 << 30:
        return (n | 0x80000000).to_bytes(4, "big")
    return (n | 0xC000000000000000).to_bytes(8, "big")


PING = b"\x01"
HANDSHAKE_DONE = b"\x1e"


def ack(largest, first_range=0, delay=0, ranges=()):
    out = b"\x02" + v(largest) + v(delay) + v(len(ranges)) + v(first_range)
    for gap, length in ranges:
        out += v(gap) + v(length)
    return out


def ack_ecn(largest, first_range, ect0, ect1, ce):
    return b"\x03" + v(largest) + v(0) + v(0) + v(first_range) + v(ect0) + v(ect1) + v(ce)


def stream(sid, off, data, fin=False):
    return bytes([0x08 | 0x04 | 0x02 | (1 if fin else 0)]) + v(sid) + v(off) + v(len(data)) + data


def crypto(off, data):
    return b"\x06" + v(off) + v(len(data)) + data


def chunk(ctl, payload):
    return bytes([ctl]) + len(payload).to_bytes(2, "big") + payload


ONE_RTT, DELIVER, TIMER, READ, WRITE = 1, 2, 4, 8, 16


def client_after_handshake():
    for side in (0, 1):  # 0: feed the client, 1: feed the server
        peer_bidi = 1 if side == 0 else 0
        peer_uni = 3 if side == 0 else 2
        own_bidi = 0 if side == 0 else 1
        full = 6 | side
        seeds = [
            [chunk(ONE_RTT | DELIVER, PING)],
            [chunk(ONE_RTT | READ, stream(peer_bidi, 0, b"GET /\n", True)),
             chunk(ONE_RTT | READ | DELIVER, stream(peer_uni, 0, b"\x00\x04" + b"x" * 40) + stream(peer_uni, 42, b"y" * 10, True))],
            [chunk(ONE_RTT | WRITE, PING), chunk(ONE_RTT, ack(2, 2)), chunk(ONE_RTT, ack_ecn(3, 1, 2, 0, 1)),
             chunk(ONE_RTT | WRITE, ack(6, 0, 10, [(0, 1), (0, 0)]))],
            [chunk(ONE_RTT | WRITE, b"\x10" + v(100000) + b"\x11" + v(own_bidi) + v(50000)
                   + b"\x12" + v(10) + b"\x13" + v(10) + b"\x14" + v(5) + b"\x15" + v(peer_bidi) + v(5)
                   + b"\x16" + v(3) + b"\x17" + v(3))],
            [chunk(ONE_RTT, b"\x18" + v(1) + v(0) + b"\x08" + b"\xab" * 8 + b"\xcd" * 16
                   + b"\x18" + v(2) + v(1) + b"\x08" + b"\xac" * 8 + b"\xce" * 16),
             chunk(ONE_RTT | DELIVER, b"\x19" + v(1) + b"\x19" + v(0))],
            [chunk(ONE_RTT | DELIVER, b"\x1a" + b"12345678" + b"\x1b" + b"87654321")],
            [chunk(ONE_RTT | READ, b"\x30" + b"unbounded datagram"), chunk(ONE_RTT | READ, b"\x31" + v(3) + b"abc")],
            [chunk(ONE_RTT, b"\x07" + v(4) + b"tokn" + HANDSHAKE_DONE)],
            [chunk(ONE_RTT | WRITE, PING), chunk(ONE_RTT, b"\x04" + v(peer_bidi) + v(7) + v(0) + b"\x05" + v(own_bidi) + v(9))],
            [chunk(ONE_RTT, crypto(0, b"\x04\x00\x00\x05" + b"\x00" * 5))],
            [chunk(ONE_RTT | TIMER, PING), chunk(ONE_RTT | TIMER | 0xe0, PING)],
            [chunk(ONE_RTT, PING), chunk(ONE_RTT, b"\x1c" + v(0x0a) + v(0x08) + v(3) + b"bye")],
            [chunk(ONE_RTT, b"\x1d" + v(0x100) + v(0))],
            [chunk(ONE_RTT, b"\x00" * 20 + PING)],
        ]
        for s in seeds:
            write("client_after_handshake", bytes([full]) + b"".join(s))
            # The same with small limits and no DATAGRAM support.
            write("client_after_handshake", bytes([full | 8]) + b"".join(s))
            # The same with 1500- and 600-byte transmit buffers.
            write("client_after_handshake", bytes([full | 0x10]) + b"".join(s))
            write("client_after_handshake", bytes([full | 0x30]) + b"".join(s))
    # Mid-handshake: Handshake-space payloads.
    for mode in (1, 2, 3, 4, 5):
        write("client_after_handshake", bytes([mode]) + chunk(0, PING + ack(0)) + chunk(DELIVER, crypto(0, b"\x14\x00\x00\x20" + b"\x00" * 32)))
        write("client_after_handshake", bytes([mode]) + chunk(ONE_RTT | DELIVER, PING) + chunk(0, crypto(5, b"zz")))


if __name__ == "__main__":
    server_endpoint()
    client_after_handshake()
