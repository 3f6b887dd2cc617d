<?php
// ASYNC_IO_AND_PARALLEL_EXECUTION.md §3, as written; only the port differs.
use Quicpro\Config;
use Quicpro\Server;
use Quicpro\Session;
use Fiber;

$cfg = Config::new([
    'cert_file' => 'cert.pem',
    'key_file'  => 'cert.pem',
    'alpn'      => ['h3'],
]);

$srv = new Server('[::]', (int) getenv('QP_PORT'), $cfg);

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
