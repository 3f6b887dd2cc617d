<?php
// ASYNC_IO_AND_PARALLEL_EXECUTION.md §3; run: php -d extension=target/release/libquicpro.so examples/single_process_server.php
use Quicpro\Config;
use Quicpro\Server;
use Quicpro\Session;
// (The seed's `use Fiber;` is left out: in the global namespace PHP warns that it has no effect.)

$cfg = Config::new([
    'cert_file' => __DIR__ . '/../certs/server.pem',
    'key_file'  => __DIR__ . '/../certs/server.key',
    'alpn'      => ['h3'],
]);

$srv = new Server('[::]', 4433, $cfg);

while ($sess = $srv->accept(100)) {
    (new Fiber(fn() => handle($sess)))->start();
}

function handle(Session $s): void {
    $req    = $s->receiveRequest();
    $path   = $req->headers()[':path'] ?? '/';
    $stream = $req->stream();
    $stream->respond(200, ['content-type' => 'text/plain']);
    $stream->sendBody("echo $path\n", fin: true);
    $s->close();
}
