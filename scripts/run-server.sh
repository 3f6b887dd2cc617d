#!/usr/bin/env bash
# The main job today: the multi-worker HTTP/3 server on port 4433, one worker
# per core sharing the port (SO_REUSEPORT), with a generated self-signed
# certificate. (The PHP edition of this demo comes with the PHP extension.)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/release/quicpro"
[ -x "$bin" ] || { echo "run-server: $bin not built (make run builds it)" >&2; exit 2; }
if [ ! -s certs/server.pem ] || [ ! -s certs/server.key ]; then
  "$bin" gen-cert --dir certs
fi
workers="${WORKERS:-$(nproc)}"
port="${PORT:-4433}"
cat <<TXT
quicpro: HTTP/3 server on UDP port $port with $workers workers (Ctrl-C stops them all).
Try, from another terminal:
  $bin get -k -v https://localhost:$port/foo
  $bin get -k -v --reconnect https://localhost:$port/foo https://localhost:$port/bar
    (the second connection resumes the TLS session and sends its request as 0-RTT)
  $bin get -k --progress -o /tmp/big https://localhost:$port/bytes/100000000
TXT
exec "$bin" serve --port "$port" --workers "$workers" --cert certs/server.pem --key certs/server.key ${QUICPRO_SERVE_ARGS:-}
