<?php

/**
 * Multi‑worker TLS resumption demo.
 * ------------------------------------------------
 * Forks N workers (default = number of CPU cores). Each worker runs
 * a tiny HTTP/3 echo server on the SAME UDP port using SO_REUSEPORT.
 * TLS session tickets are stored in the quicpro shared‑memory LRU
 * cache, so clients can resume across workers.
 */

use Quicpro\Config;
use Quicpro\Server;

$workers = (int)($argv[1] ?? shell_exec('nproc') ?: 4);
$port    = 4433;

$cfg = Config::new([
    'cert_file' => getenv('CERT_FILE') ?: __DIR__ . '/../certs/server.pem',
    'key_file'  => getenv('KEY_FILE') ?: __DIR__ . '/../certs/server.key',
    'alpn'      => ['h3'],
    'session_cache' => true,   // enable shared SHM‑LRU
]);

for ($i = 0; $i < $workers; $i++) {
    if (pcntl_fork() === 0) {
        // Child – bind to same port (SO_REUSEPORT is on by default)
        $srv = new Server('0.0.0.0', $port, $cfg);
        while ($sess = $srv->accept(50)) {
            // Basic echo: send back request path as body
            $stream = $sess->receiveRequest();
            $path   = $stream->headers()[':path'] ?? '/';
            $stream->respond(200, ['content-type' => 'text/plain']);
            $stream->sendBody("echo from worker {$i}: {$path}\n", fin:true);
            $sess->close();
        }
        exit(0);
    }
}

// Parent waits indefinitely
pcntl_wait($status);
