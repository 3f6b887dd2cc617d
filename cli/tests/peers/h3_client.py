#!/usr/bin/env python3
"""aioquic HTTP/3 client against `quicpro serve` (used by cli/tests/cli_interop.rs).

Reuses the client protocol of tests/interop/aioquic_h3_peer.py, but speaks
the quicpro server's routes:
  GET /bytes/<n>   -> n pattern bytes (checked by SHA-256)
  GET /echo/<x>    -> "echo from worker <w>: /echo/<x>\n"
  POST /echo       -> "<len> <sha256 hex>\n" of the request body

Prints one "RESULT ok=1 ..." line; the exit status is 0 only when every
response checked out. Stops by itself after --deadline seconds.
"""

import argparse
import asyncio
import os
import re
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tests", "interop"))

from aioquic.asyncio import connect  # noqa: E402
from aioquic_h3_peer import H3_NO_ERROR, H3ClientProtocol, client_configuration, pattern_sha256, result  # noqa: E402


async def run(args):
    problems = []
    info = {}
    t0 = time.monotonic()
    async with connect(
        args.host, args.port, configuration=client_configuration(args), create_protocol=H3ClientProtocol
    ) as proto:
        # A large download, hashed as it streams.
        _, req = proto.request("GET", f"/bytes/{args.size}", keep=False)
        await req.fut
        secs = max(req.t1 - req.t0, 1e-6)
        digest = req.hash.hexdigest()
        if req.status != "200" or req.got != args.size or digest != pattern_sha256(args.size):
            problems.append(f"download_status{req.status}_got{req.got}_sha{digest[:16]}")
        info.update(bytes=req.got, sha256=digest, secs=round(secs, 2), mib_s=round(req.got / secs / 1048576, 1))

        # A few GET /echo/<i>, concurrently.
        gets = [(i, proto.request("GET", f"/echo/{i}")[1]) for i in range(args.echo_count)]
        for i, r in gets:
            await r.fut
            body = bytes(r.body).decode(errors="replace")
            if r.status != "200" or not re.fullmatch(rf"echo from worker \d+: /echo/{i}\n", body):
                problems.append(f"echo{i}_status{r.status}_{body[:40]}")
        info["echo_gets"] = len(gets)

        # POST /echo: the server answers with the body's length and SHA-256.
        posts = []
        for n in (0, 1, 4096, 100_000):
            if n == 0:
                posts.append((n, proto.request("POST", "/echo")[1]))
            else:
                posts.append((n, proto.request("POST", "/echo", upload=n)[1]))
        for n, r in posts:
            await r.fut
            body = bytes(r.body).decode(errors="replace")
            if r.status != "200" or body != f"{n} {pattern_sha256(n)}\n":
                problems.append(f"post{n}_status{r.status}_{body[:40]}")
        info["echo_posts"] = len(posts)
        proto.close(error_code=H3_NO_ERROR, reason_phrase="done")
    info["elapsed_ms"] = int((time.monotonic() - t0) * 1000)
    ok = not problems
    result(ok=ok, problems=",".join(problems)[:400] or "none", **info)
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--size", type=int, default=10_000_000)
    p.add_argument("--echo-count", type=int, default=5)
    p.add_argument("--deadline", type=float, default=100.0)
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
