#!/usr/bin/env bash
# `make run`: the newest working demo, until the HTTP/3 server lands.
# Runs `quicpro inspect` over the real QUIC Initials captured from browsers
# and servers (shared/data/quic-initials-from-pcaps.json).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED_DATA="${QUICPRO_SHARED_DATA:-$ROOT/../shared/data}"
CAPTURE="$SHARED_DATA/quic-initials-from-pcaps.json"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/quicpro"

if [ ! -x "$BIN" ]; then
  echo "run-demo: $BIN not found; build it with: cargo build --release -p quicpro-cli" >&2
  exit 2
fi
if [ ! -f "$CAPTURE" ]; then
  echo "run-demo: $CAPTURE not found (set QUICPRO_SHARED_DATA to the shared/data folder)" >&2
  exit 2
fi

cat <<'TEXT'
quicpro demo: the packet inspector over real captured QUIC traffic.
The capture file holds 37 UDP datagrams that open real QUIC handshakes, taken
from public packet captures of Chrome, Firefox, curl, quic-go and QUIC v2 test
servers, in both directions; some coalesce several packets in one datagram and
some carry an address-validation token. For each datagram `quicpro inspect`
parses every packet header with quicpro's own QUIC code (quic-core), derives
the Initial keys from the client's first Destination Connection ID as both
endpoints do (RFC 9001 §5.2; RFC 9369 for v2), removes header protection,
verifies and opens the AES-128-GCM payload, and prints the packet number and
every frame inside: the CRYPTO frames carrying the TLS ClientHello and
ServerHello, ACKs, PADDING, PINGs. Handshake and 1-RTT packets, whose keys only
the two endpoints know, are listed as "(no keys)". The last line sums it up;
a packet that failed to decrypt would count as an error and fail the run.

TEXT
exec "$BIN" inspect --json "$CAPTURE"
