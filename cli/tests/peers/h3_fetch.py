#!/usr/bin/env python3
"""aioquic HTTP/3 client: GET one path from `quicpro serve`, report its SHA-256.

Used by cli/tests/xdp_netns.rs (run inside a network namespace with
`ip netns exec`). Reuses the client protocol of
tests/interop/aioquic_h3_peer.py. Prints one line
"RESULT ok=1 status=200 bytes=N sha256=HEX"; exits 0 only for a 200.
Stops by itself after --deadline seconds.
"""

import argparse
import asyncio
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tests", "interop"))

from aioquic.asyncio import connect  # noqa: E402
from aioquic_h3_peer import H3_NO_ERROR, H3ClientProtocol, client_configuration, result  # noqa: E402


async def run(args):
    async with connect(
        args.host, args.port, configuration=client_configuration(args), create_protocol=H3ClientProtocol
    ) as proto:
        _, req = proto.request("GET", args.path, keep=False)
        await req.fut
        proto.close(error_code=H3_NO_ERROR, reason_phrase="done")
    ok = req.status == "200"
    result(ok=ok, status=req.status, bytes=req.got, sha256=req.hash.hexdigest())
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--deadline", type=float, default=60.0)
    args = p.parse_args()
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(int(args.deadline) + 5)
    try:
        ok = asyncio.run(asyncio.wait_for(run(args), args.deadline))
    except asyncio.TimeoutError:
        result(ok=0, error="deadline")
        sys.exit(3)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
