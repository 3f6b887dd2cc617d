<?php
// The §2 client with its three fetches in parallel: the same fetch(), the
// Fibers handed to Quicpro\Loop::all instead of started one by one. Inside
// the loop's Fibers quicpro_connect and quicpro_poll suspend the Fiber
// while they wait, so the three connections and requests overlap.
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
foreach (Quicpro\Loop::all($fibers) as $body) echo $body, PHP_EOL;
