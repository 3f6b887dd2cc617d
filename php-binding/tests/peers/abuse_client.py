#!/usr/bin/env python3
"""aioquic HTTP/3 clients that end their connections every way a peer or
the network can, for the test that no client can end a PHP worker.

usage: abuse_client.py PORT MODE
  graceful     GET /x, then CONNECTION_CLOSE with H3_NO_ERROR
  app-error    GET /x, then CONNECTION_CLOSE with an application error
  transport    GET /x, then CONNECTION_CLOSE with PROTOCOL_VIOLATION
  vanish       GET /x, then silence (the server's idle timeout ends it)
  reset        GET /big, read a little, then RESET_STREAM/STOP_SENDING
  garbage      short-header datagrams for connections the server does
               not know (it answers with stateless resets), then a GET
  handshake    an Initial, then silence (a handshake that never ends)
Prints "done MODE" when its part is over.
"""
import asyncio
import os
import socket
import ssl
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated


class Client(QuicConnectionProtocol):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.h3 = None
        self.got = {}
        self.waiters = {}

    def quic_event_received(self, event):
        if isinstance(event, ProtocolNegotiated):
            self.h3 = H3Connection(self._quic)
        if self.h3 is None:
            return
        for ev in self.h3.handle_event(event):
            if isinstance(ev, (DataReceived, HeadersReceived)):
                n = len(ev.data) if isinstance(ev, DataReceived) else 0
                self.got[ev.stream_id] = self.got.get(ev.stream_id, 0) + n
                w = self.waiters.get(ev.stream_id)
                if w and not w.done() and (ev.stream_ended or self.got[ev.stream_id] >= 65536):
                    w.set_result(self.got[ev.stream_id])

    def get(self, path):
        sid = self._quic.get_next_available_stream_id()
        self.h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"), (b":path", path.encode())], end_stream=True)
        fut = asyncio.get_running_loop().create_future()
        self.waiters[sid] = fut
        self.transmit()
        return sid, fut


async def main(port, mode):
    cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, verify_mode=ssl.CERT_NONE, server_name="localhost", idle_timeout=30.0)
    if mode == "garbage":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(200):
            # Header form 0, fixed bit 1, then random bytes: an unknown
            # connection ID (RFC 9000 §10.3: answered by a stateless reset).
            s.sendto(bytes([0x40 | (os.urandom(1)[0] & 0x3f)]) + os.urandom(60), ("127.0.0.1", port))
        s.close()
        mode_after = "graceful"
    elif mode == "handshake":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        from aioquic.quic.connection import QuicConnection
        q = QuicConnection(configuration=cfg)
        q.connect(("127.0.0.1", port), now=0.0)
        for data, _ in q.datagrams_to_send(now=0.0):
            s.sendto(data, ("127.0.0.1", port))
        s.close()
        print("done handshake", flush=True)
        return
    else:
        mode_after = mode
    async with connect("127.0.0.1", port, configuration=cfg, create_protocol=Client) as p:
        await p.wait_connected()
        path = "/big" if mode_after == "reset" else "/x"
        sid, fut = p.get(path)
        await asyncio.wait_for(fut, 10)
        if mode_after == "graceful":
            p._quic.close(error_code=0x100)
        elif mode_after == "app-error":
            p._quic.close(error_code=0x10c, reason_phrase="client gave up")
        elif mode_after == "transport":
            # A transport error code (not an application close).
            p._quic.close(error_code=0x0A, frame_type=0, reason_phrase="client saw a violation")
        elif mode_after == "reset":
            p._quic.reset_stream(sid, 0x10c)
            p._quic.stop_stream(sid, 0x10c)
            p.transmit()
            await asyncio.sleep(0.2)
            p._quic.close(error_code=0x100)
        elif mode_after == "vanish":
            # No close at all: the process ends without another packet;
            # the server times the session out.
            print(f"done {mode}", flush=True)
            os._exit(0)
        p.transmit()
        await asyncio.sleep(0.1)
    print(f"done {mode}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
