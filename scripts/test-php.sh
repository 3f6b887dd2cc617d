#!/usr/bin/env bash
# Runs the extension's phpt tests with PHP's own run-tests.php and prints
# one summary line ("phpt: N passed, M failed, K skipped").
set -uo pipefail
cd "$(dirname "$0")/.."
ext="$(realpath "${1:-target/debug/libquicpro.so}")"
runner="$(ls /usr/lib/php/*/build/run-tests.php 2>/dev/null | head -1)"
[ -n "$runner" ] || { echo "test-php: run-tests.php not found (apt-get install php8.2-dev)" >&2; exit 2; }
[ -s certs/server.pem ] || target/debug/quicpro gen-cert --dir certs
log=target/phpt-output.log
mkdir -p target
# -q: no interaction; --show-diff: failures explain themselves in the CI log.
NO_INTERACTION=1 php "$runner" -q --no-color --show-diff -d extension="$ext" php-binding/tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
count() { sed -n "s/^Tests $1 *: *\([0-9]*\).*/\1/p" "$log" | head -1; }
passed=$(count passed); failed=$(count failed); skipped=$(count skipped)
passed=${passed:-0}; failed=${failed:-0}; skipped=${skipped:-0}
echo "phpt: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ] && [ "$status" -eq 0 ]
