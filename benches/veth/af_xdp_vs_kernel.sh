#!/usr/bin/env bash
# AF_XDP against the kernel UDP backends over a veth pair between two
# network namespaces (root only). The same client (`quicpro get`) runs in
# the client namespace against `quicpro serve` in the server namespace:
#
#   1. goodput and server TX packets/s of one large download, per backend
#      (epoll, io_uring, busy_poll, af_xdp; one worker);
#   2. requests/s of small GETs from 8 concurrent client processes (each its
#      own connection), with 1 and 2 workers, kernel UDP (io_uring) vs af_xdp.
#
# veth is a software device: these figures compare the server-side paths
# on one host (copy-mode AF_XDP, no NIC), not line rates.
#
# Usage: benches/veth/af_xdp_vs_kernel.sh [quicpro binary]
#   (default: target/release/quicpro, else target/debug/quicpro)
# Env: SIZE (bytes per download, default 50000000), REQS (GETs per client
# process, default 200).

set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-}"
if [ -z "$BIN" ]; then
  if [ -x target/release/quicpro ]; then BIN=target/release/quicpro; else BIN=target/debug/quicpro; fi
fi
BIN="$(realpath "$BIN")"
SIZE="${SIZE:-50000000}"
REQS="${REQS:-200}"
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

ip netns add "$S"; ip netns add "$C"
ip -n "$S" link add "$S" numrxqueues 2 numtxqueues 2 type veth peer name "$C" netns "$C" numrxqueues 2 numtxqueues 2
ip -n "$S" addr add 198.18.0.1/24 dev "$S"
ip -n "$C" addr add 198.18.0.2/24 dev "$C"
for ns in "$S" "$C"; do ip -n "$ns" link set lo up; ip -n "$ns" link set "$ns" up; done
SMAC=$(ip -n "$S" link show "$S" | awk '/link\/ether/ {print $2}')
CMAC=$(ip -n "$C" link show "$C" | awk '/link\/ether/ {print $2}')
ip -n "$S" neigh replace 198.18.0.2 lladdr "$CMAC" dev "$S" nud permanent
ip -n "$C" neigh replace 198.18.0.1 lladdr "$SMAC" dev "$C" nud permanent
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
}

now() { date +%s.%N; }
tx_packets() { ip netns exec "$S" cat "/sys/class/net/$S/statistics/tx_packets"; }

echo "binary: $BIN; download $SIZE bytes; $REQS GETs x 8 clients"
printf '%-10s %12s %14s\n' backend "goodput MB/s" "server tx pps"
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
    if [ "$b" = af_xdp ]; then start_server "$w" QUICPRO_XDP="$S"; else start_server "$w" QUICPRO_BACKEND="$b"; fi
    t0=$(now)
    pids=()
    for _ in $(seq 1 8); do
      # shellcheck disable=SC2086
      ip netns exec "$C" "$BIN" get -k --timeout 120 $URLS >/dev/null &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    t1=$(now)
    stop_server
    awk -v r="$((REQS * 8))" -v a="$t0" -v b="$t1" -v n="$b" -v w="$w" \
      'BEGIN { printf "%-10s %8d %12.0f\n", n, w, r / (b - a) }'
  done
done
