#!/usr/bin/env bash
# The main job: the seed demo, examples/ticket_resumption_multiworker.php,
# with the extension built by `make php-ext`: one worker per core on UDP
# port 4433 (SO_REUSEPORT), TLS sessions shared through the shared-memory
# LRU so a client resumes on any worker. Ctrl-C stops every worker.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
ext="$target/release/libquicpro.so"
bin="$target/release/quicpro"
[ -f "$ext" ] || { echo "run-php-demo: $ext not built (make run builds it)" >&2; exit 2; }
if [ ! -s certs/server.pem ] || [ ! -s certs/server.key ]; then
  "$bin" gen-cert --dir certs
fi
workers="${WORKERS:-$(nproc)}"
cat <<TXT
quicpro PHP demo: $workers workers on UDP port 4433 (Ctrl-C stops them all).
Quick test, from another terminal (the demo's "curl --http3 -k"):
  $bin get -k https://localhost:4433/foo
      -> echo from worker N: /foo
  $bin get -k -v --reconnect https://localhost:4433/foo https://localhost:4433/bar
      -> the second connection prints "TLS session resumed (0-RTT accepted)"
  php -d extension=$ext -r '\$c = Quicpro\\Config::new(["verify_peer" => false]);
      foreach ([1, 2] as \$i) { \$s = quicpro_connect("localhost", 4433, \$c); \$id = quicpro_send_request(\$s, "/bar");
      while (!\$r = quicpro_receive_response(\$s, \$id)) quicpro_poll(\$s, 5);
      echo \$r["body"], "  TLS session resumed: ", quicpro_is_resumed(\$s) ? "yes" : "no", "\n"; quicpro_close(\$s); }'
      -> each connection has its own UDP port, so the second one may land on another worker and still resumes
TXT
exec php -d extension="$PWD/$ext" examples/ticket_resumption_multiworker.php "$workers"
