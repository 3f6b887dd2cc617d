<?php
// ASYNC_IO_AND_PARALLEL_EXECUTION.md §4, as written; only the port differs.
use Quicpro\Config;
use Quicpro\Server;
use Fiber;

$workers = (int) trim(shell_exec('nproc')) ?: 4;
$cfg = Config::new([
    'cert_file'     => 'cert.pem',
    'key_file'      => 'cert.pem',
    'alpn'          => ['h3'],
    'session_cache' => true          // shared ticket ring
]);

for ($i = 0; $i < $workers; $i++) {
    if (pcntl_fork() === 0) { worker($i, (int) getenv('QP_PORT'), $cfg); exit; }
}
pcntl_wait($status);

function worker(int $id, int $port, Config $cfg): void {
    $srv = new Server('0.0.0.0', $port, $cfg);
    echo "[worker $id] ready\n";
    while ($s = $srv->accept(100)) (new Fiber(fn() => handle($s, $id)))->start();
}

function handle($sess, int $wid): void {
    $req    = $sess->receiveRequest();
    $stream = $req->stream();
    $stream->respond(200, ['content-type' => 'text/plain']);
    $stream->sendBody("hello from $wid\n", fin: true);
    $sess->close();
}
