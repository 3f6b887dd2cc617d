<?php
// ASYNC_IO_AND_PARALLEL_EXECUTION.md §2. Against the demo server: SSL_CERT_FILE=certs/server.pem php -d extension=target/release/libquicpro.so examples/parallel_fiber_client.php
function fetch(string $path): string {
    $s  = quicpro_connect('localhost', 4433);
    $id = quicpro_send_request($s, $path);
    while (!$r = quicpro_receive_response($s, $id)) {
        quicpro_poll($s, 5);       // yields ≤ 5 ms
    }
    quicpro_close($s);
    return $r['body'];
}

$jobs   = ['/a', '/b', '/c'];
$fibers = array_map(fn($p) => new Fiber(fn() => fetch($p)), $jobs);
foreach ($fibers as $f) $f->start();
foreach ($fibers as $f) echo $f->getReturn(), PHP_EOL;
