#!/usr/bin/env bash
# AF_XDP against the kernel UDP backends over a veth pair between two
# network namespaces (root only). The same client (`quicpro get`) runs in
# the client namespace against `quicpro serve` in the server namespace:
#
#   1. goodput and server TX packets/s of one large download, per backend
#      (epoll, io_uring, busy_poll, af_xdp; one worker);
#   2. requests/s of small GETs from 8 concurrent clients, each running
#      ROUNDS connections of REQS parallel GETs (so handshakes count too),
#      with 1 and 2 workers, kernel UDP (io_uring) vs af_xdp.
#
# veth is a software device: these figures compare the server-side paths
# on one host (copy-mode AF_XDP, no NIC), not line rates.
#
# Usage: benches/veth/af_xdp_vs_kernel.sh [quicpro binary]
#   (default: target/release/quicpro, else target/debug/quicpro)
# Env: SIZE (bytes per download, default 50000000), REQS (GETs per
# connection, default 50: under the server's concurrent-stream limit),
# ROUNDS (connections per client, default 5).

set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-}"
if [ -z "$BIN" ]; then
  if [ -x target/release/quicpro ]; then BIN=target/release/quicpro; else BIN=target/debug/quicpro; fi
fi
BIN="$(realpath "$BIN")"
SIZE="${SIZE:-50000000}"
REQS="${REQS:-50}"
ROUNDS="${ROUNDS:-5}"
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, XDP)"; exit 1; }

ID="qxb$$"
S="${ID}s"; C="${ID}c"
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null || true
  ip netns del "$S" 2>/dev/null || true
  ip netns del "$C" 2>/dev/null || true
}
trap cleanup EXIT

# setup QUEUES: a fresh namespace pair whose veth has QUEUES queues, so
# that every queue has an AF_XDP worker (a packet on a queue without one
# would take the kernel path, and the run would measure a mix).
setup() {
  local q=$1
  ip netns del "$S" 2>/dev/null || true
  ip netns del "$C" 2>/dev/null || true
  ip netns add "$S"; ip netns add "$C"
  ip -n "$S" link add "$S" numrxqueues "$q" numtxqueues "$q" type veth peer name "$C" netns "$C" numrxqueues "$q" numtxqueues "$q"
  ip -n "$S" addr add 198.18.0.1/24 dev "$S"
  ip -n "$C" addr add 198.18.0.2/24 dev "$C"
  for ns in "$S" "$C"; do ip -n "$ns" link set lo up; ip -n "$ns" link set "$ns" up; done
  local smac cmac
  smac=$(ip -n "$S" link show "$S" | awk '/link\/ether/ {print $2}')
  cmac=$(ip -n "$C" link show "$C" | awk '/link\/ether/ {print $2}')
  ip -n "$S" neigh replace 198.18.0.2 lladdr "$cmac" dev "$S" nud permanent
  ip -n "$C" neigh replace 198.18.0.1 lladdr "$smac" dev "$C" nud permanent
}
LOG=$(mktemp)

# start_server WORKERS ENV...: quicpro serve in the server namespace.
start_server() {
  local workers=$1; shift
  : >"$LOG"
  ip netns exec "$S" env -u QUICPRO_BACKEND -u QUICPRO_XDP -u QUICPRO_BUSY_POLL "$@" \
    "$BIN" serve --port 4433 --workers "$workers" --duration 300 2>"$LOG" >/dev/null &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    [ "$(grep -c 'listening on' "$LOG")" -ge "$workers" ] && return 0
    sleep 0.05
  done
  echo "server did not start:"; cat "$LOG"; exit 1
}

stop_server() {
  kill -TERM "$SERVER_PID"
  for _ in $(seq 1 200); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  # AF_XDP: how much took the kernel path (should be ~0).
  grep -o 'af_xdp [^ ]* queue [0-9]* ([a-z-]*): .* udp rx [0-9]* buffers' "$LOG" | sed 's/^/    /' >&2 || true
}

now() { date +%s.%N; }
tx_packets() { ip netns exec "$S" cat "/sys/class/net/$S/statistics/tx_packets"; }

setup 1
echo "binary: $BIN; download $SIZE bytes; 8 clients x $ROUNDS connections x $REQS GETs"
# Server TX packets/s as the veth counts them: a GSO batch (kernel UDP
# backends) is one packet there, an AF_XDP frame is one datagram.
printf '%-10s %12s %14s\n' backend "goodput MB/s" "server tx pkt/s"
for b in epoll io_uring busy_poll af_xdp; do
  case $b in
    af_xdp) start_server 1 QUICPRO_XDP="$S" ;;
    busy_poll) start_server 1 QUICPRO_BACKEND=busy_poll QUICPRO_BUSY_POLL=50 ;;
    *) start_server 1 QUICPRO_BACKEND="$b" ;;
  esac
  p0=$(tx_packets); t0=$(now)
  ip netns exec "$C" "$BIN" get -k --timeout 120 -o /dev/null "https://198.18.0.1:4433/bytes/$SIZE"
  t1=$(now); p1=$(tx_packets)
  stop_server
  awk -v s="$SIZE" -v a="$t0" -v b="$t1" -v p="$((p1 - p0))" -v n="$b" \
    'BEGIN { d = b - a; printf "%-10s %12.1f %14.0f\n", n, s / d / 1e6, p / d }'
done

echo
printf '%-10s %8s %12s\n' backend workers "requests/s"
URLS=$(for i in $(seq 1 "$REQS"); do printf 'https://198.18.0.1:4433/echo/%d ' "$i"; done)
for b in io_uring af_xdp; do
  for w in 1 2; do
    setup "$w"
    if [ "$b" = af_xdp ]; then start_server "$w" QUICPRO_XDP="$S"; else start_server "$w" QUICPRO_BACKEND="$b"; fi
    t0=$(now)
    pids=()
    for _ in $(seq 1 8); do
      # shellcheck disable=SC2086
      ( for _ in $(seq 1 "$ROUNDS"); do ip netns exec "$C" "$BIN" get -k --timeout 60 $URLS >/dev/null; done ) &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    t1=$(now)
    stop_server
    awk -v r="$((REQS * ROUNDS * 8))" -v a="$t0" -v b="$t1" -v n="$b" -v w="$w" \
      'BEGIN { printf "%-10s %8d %12.0f\n", n, w, r / (b - a) }'
  done
done
