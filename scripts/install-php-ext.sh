#!/usr/bin/env bash
# Installs quicpro.so into PHP's extension directory and enables it with an
# ini file in PHP's conf.d scan directory (Debian: /etc/php/8.2/cli/conf.d).
set -euo pipefail
so="${1:?usage: install-php-ext.sh path/to/libquicpro.so}"
extdir="$(php-config --extension-dir)"
install -m 0644 "$so" "$extdir/quicpro.so"
scandir="$(php -r 'echo PHP_CONFIG_FILE_SCAN_DIR;')"
if [ -n "$scandir" ]; then
  printf '; quicpro: QUIC + HTTP/3 for PHP\nextension=quicpro.so\n; quicpro.shm_size=65536\n' > "$scandir/20-quicpro.ini"
  echo "installed $extdir/quicpro.so and $scandir/20-quicpro.ini"
else
  echo "installed $extdir/quicpro.so; add extension=quicpro.so to php.ini"
fi
php -m | grep -qx quicpro && echo "php -m lists quicpro"
