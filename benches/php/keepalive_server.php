<?php
/**
 * The keep-alive PHP server of the load benchmark: one Fiber per session,
 * serving every request of the connection, the way the documents write a
 * Quicpro server. `GET /bytes/<n>` answers n bytes of the benchmark's
 * pattern (byte i = (i*7 + i/251) mod 256), so the generator checks every
 * byte, as it does for the Rust servers.
 *
 * usage: php -d extension=libquicpro.so keepalive_server.php PORT CERT KEY
 */

use Quicpro\Config;
use Quicpro\Server;

[$_, $port, $cert, $key] = $argv + [null, 0, 'certs/server.pem', 'certs/server.key'];

// The pattern repeats every 251*256 bytes; one copy plus the largest chunk
// sent at once lets every chunk be a substr() of it.
const PERIOD = 251 * 256;
const CHUNK = 262144;
$block = '';
for ($i = 0; $i < PERIOD + CHUNK; $i++) {
    $block .= chr(($i * 7 + intdiv($i, 251)) & 0xff);
}

$cfg = Config::new(['cert_file' => $cert, 'key_file' => $key, 'alpn' => ['h3'], 'max_idle_ms' => 60000]);
$srv = new Server('127.0.0.1', (int) $port, $cfg);
fwrite(STDERR, "listening on 127.0.0.1:" . $srv->port() . "\n");

while ($sess = $srv->accept(100)) {
    (new Fiber(function () use ($sess, $block) {
        while ($req = $sess->receiveRequest()) {
            $path = $req->path();
            if (strncmp($path, '/bytes/', 7) !== 0) {
                $req->respond(404);
                $req->finish();
                continue;
            }
            $n = (int) substr($path, 7);
            $req->respond(200, ['content-type' => 'application/octet-stream', 'content-length' => $n]);
            if ($n === 0) {
                $req->finish();
            }
            for ($off = 0; $off < $n; $off += CHUNK) {
                $len = min(CHUNK, $n - $off);
                if (!$req->sendBody(substr($block, $off % PERIOD, $len), fin: $off + $len >= $n)) {
                    break;
                }
            }
        }
    }))->start();
}
