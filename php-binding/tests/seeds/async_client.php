<?php
// ASYNC_IO_AND_PARALLEL_EXECUTION.md §2, as written; only host and port differ.
function fetch(string $path): string {
    $s  = quicpro_connect('localhost', (int) getenv('QP_PORT'));
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
