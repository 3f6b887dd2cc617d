<?php
// ASYNC_IO_AND_PARALLEL_EXECUTION.md §4; run: php -d extension=target/release/libquicpro.so examples/fork_per_core_server.php
use Quicpro\Config;
use Quicpro\Server;
// (The seed's `use Fiber;` is left out: in the global namespace PHP warns that it has no effect.)

$workers = (int) trim(shell_exec('nproc')) ?: 4;
$cfg = Config::new([
    'cert_file'     => __DIR__ . '/../certs/server.pem',
    'key_file'      => __DIR__ . '/../certs/server.key',
    'alpn'          => ['h3'],
    'session_cache' => true          // shared ticket ring
]);

for ($i = 0; $i < $workers; $i++) {
    if (pcntl_fork() === 0) { worker($i, 4433, $cfg); exit; }
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
