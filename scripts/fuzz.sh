#!/usr/bin/env bash
# Runs every cargo-fuzz target: `fuzz.sh smoke N` (N seconds each, CI) or
# `fuzz.sh long N` (local campaigns). cargo-fuzz needs nightly flags; the
# stable toolchain accepts them with RUSTC_BOOTSTRAP=1.
set -euo pipefail
mode=${1:-smoke}
secs=${2:-20}
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list </dev/null)
# Build every target first, so the fuzzing time is spent fuzzing. stdin is
# /dev/null: cargo probes rustc with `rustc -`, which must not read ours.
cargo fuzz build -O </dev/null
passed=0; failed=0
for t in $targets; do
  mkdir -p corpus/$t
  seeds=()
  [ -d seeds/$t ] && seeds+=(seeds/$t)
  log=$(mktemp)
  if cargo fuzz run -O "$t" corpus/$t "${seeds[@]}" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 </dev/null >"$log" 2>&1; then
    execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
    echo "fuzz $t: ok, ${execs:-?} execs in ${secs}s"
    passed=$((passed+1))
  else
    echo "fuzz $t: FAILED"; tail -40 "$log"
    failed=$((failed+1))
  fi
  rm -f "$log"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
