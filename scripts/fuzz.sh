#!/usr/bin/env bash
# Runs every cargo-fuzz target: `fuzz.sh smoke N` (N seconds each, CI),
# `fuzz.sh long N` (local runs), or `fuzz.sh campaign N [target...]` (the
# campaign of docs/FUZZING.md: no sanitizer — the fuzzed crates forbid
# unsafe code, so AddressSanitizer would only halve the executions — with
# debug assertions on, one line per run appended to fuzz/campaign.tsv).
# cargo-fuzz needs nightly flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1.
set -euo pipefail
mode=${1:-smoke}
secs=${2:-20}
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list </dev/null)
san=()
if [ "$mode" = campaign ]; then
  san=(-s none)
  [ $# -gt 2 ] && targets="${*:3}"
fi
# Build every target first, so the fuzzing time is spent fuzzing. stdin is
# /dev/null: cargo probes rustc with `rustc -`, which must not read ours.
cargo fuzz build -O "${san[@]}" </dev/null
passed=0; failed=0
for t in $targets; do
  mkdir -p corpus/$t
  seeds=()
  [ -d seeds/$t ] && seeds+=(seeds/$t)
  log=$(mktemp)
  # The run's CPU time (user + system of cargo-fuzz and the fuzzer), which
  # is what the campaign counts: wall time overstates a niced run.
  tf=$(mktemp)
  TIMEFORMAT='%U %S'
  if { time cargo fuzz run -O "${san[@]}" "$t" corpus/$t "${seeds[@]}" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 </dev/null >"$log" 2>&1; } 2>"$tf"; then
    execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
    echo "fuzz $t: ok, ${execs:-?} execs in ${secs}s"
    if [ "$mode" = campaign ]; then
      # The last status line: "#N ... cov: E ft: F corp: C/S ...".
      last=$(grep -E '^#[0-9]+' "$log" | tail -1)
      cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
      ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
      cpu=$(awk '{printf "%d", $1 + $2}' "$tf")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$secs" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$(ls corpus/$t | wc -l)" "$cpu" >>campaign.tsv
    fi
    passed=$((passed+1))
  else
    echo "fuzz $t: FAILED"; tail -40 "$log"
    if [ "$mode" = campaign ]; then
      printf '%s\t%s\t%s\tcrash\t%s\n' "$(date -u +%FT%TZ)" "$t" "$secs" "$(ls -t artifacts/$t 2>/dev/null | head -1)" >>campaign.tsv
      cp "$log" "campaign-$t-$(date +%s).log"
    fi
    failed=$((failed+1))
  fi
  rm -f "$log" "$tf"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
