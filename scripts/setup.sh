#!/usr/bin/env bash
# Installs what building and testing quicpro needs, skipping what is already present,
# so a second run takes seconds. Runs as root on Debian 12 (CI's machine).
set -euo pipefail

# Interop and benchmark peers: caddy (quic-go), ngtcp2's examples, Chromium,
# PHP-FPM (the Caddy + PHP-FPM benchmark target), cmake (the quiche peer's
# BoringSSL), openssl (certificate hashes for Chromium), amphp (the event
# loop the PHP client is driven from in a phpt) and cgi-fcgi (FastCGI requests
# to PHP-FPM in a phpt).
APT_PKGS=(clang libelf-dev m4 iproute2 php8.2-cli php8.2-dev pkg-config zlib1g-dev
          caddy ngtcp2-client ngtcp2-server chromium php8.2-fpm cmake openssl
          php-amphp-amp libfcgi-bin)
PIP_PKGS=(aioquic pylsqpack)

need_apt=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

need_pip=()
for p in "${PIP_PKGS[@]}"; do
  python3 -c "import importlib.metadata as m; m.version('$p')" 2>/dev/null || need_pip+=("$p")
done
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "setup: pip install ${need_pip[*]}"
  python3 -m pip install -q "${need_pip[@]}"
fi

# rustfmt and clippy: `make test` checks formatting and lints.
if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || { echo "setup: rustup component add $c"; rustup component add "$c"; }
  done
fi
# A toolchain without rustup (Debian's cargo): the distribution's packages.
cargo fmt --version >/dev/null 2>&1 || { echo "setup: apt-get install rustfmt"; apt-get install -y -q rustfmt >/dev/null; }
cargo clippy --version >/dev/null 2>&1 || { echo "setup: apt-get install rust-clippy"; apt-get install -y -q rust-clippy >/dev/null; }

if [ "${QUICPRO_SETUP_FUZZ:-1}" = "1" ] && ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "setup: cargo install cargo-fuzz"
  cargo install -q --locked cargo-fuzz
fi
echo "setup: ok"
