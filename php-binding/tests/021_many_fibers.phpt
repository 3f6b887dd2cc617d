--TEST--
quicpro: one process serves 1,000 concurrent sessions with one Fiber each; 100 concurrent client Fibers
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
$port = qp_free_port();
// The 1,000 client connections below are separate blocking clients, each
// driven only while the script waits on it: one resumed with 0-RTT may get
// its server's handshake flight read (and its Finished sent) only when the
// first loop reaches it, which in a debug build can be more than the
// server's default 10 s handshake limit after it connected (the server then
// drops it, rightly, and the second request meets a stateless reset).
$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key(), 'max_streams_bidi' => 100, 'handshake_timeout_ms' => 120000]);
$pid = qp_fork(function () use ($cfg, $port) {
    $srv = new Server('127.0.0.1', $port, $cfg);
    $max = 0;
    while ($sess = $srv->accept(20)) {
        (new Fiber(function () use ($sess, $srv, &$max) {
            // Each session holds its Fiber until the client's second request:
            // all sessions are open and suspended at the same time.
            $a = $sess->receiveRequest();
            $a->respond(200);
            $a->sendBody((string) $srv->stats()['waiting_fibers'], fin: true);
            $b = $sess->receiveRequest();
            if ($b === null) { return; }   // the client left after one request
            $b->respond(200);
            $b->sendBody('bye', fin: true);
            $sess->close();
        }))->start();
    }
});
qp_wait_up($port);
// 1,000 client connections, each with one request answered; then all of them hold
// a second request that the server Fibers answer only after every session is open.
$clients = [];
$cc = qp_client_config();
for ($i = 0; $i < 1000; $i++) {
    $s = quicpro_connect('localhost', $port, $cc);
    $id = quicpro_send_request($s, "/first$i");
    $clients[] = [$s, $id];
}
$peak = 0; $firsts = 0;
$end = microtime(true) + 60;
foreach ($clients as [$s, $id]) {
    while (!$r = quicpro_receive_response($s, $id)) { if (microtime(true) > $end) die("timeout\n"); quicpro_poll($s, 1); }
    $firsts++;
    $peak = max($peak, (int) $r['body']);
}
echo "first responses: $firsts\n";
echo "server had >= 900 suspended session Fibers at once: ", $peak >= 900 ? 'yes' : "no ($peak)", "\n";
$byes = 0;
foreach ($clients as [$s, $id]) {
    $id2 = quicpro_send_request($s, '/second');
    while (!$r = quicpro_receive_response($s, $id2)) { if (microtime(true) > $end) die("timeout2\n"); quicpro_poll($s, 1); }
    if ($r['body'] === 'bye') $byes++;
    quicpro_close($s);
}
echo "second responses: $byes\n";

// 100 client Fibers that yield to each other while they wait.
$fibers = [];
for ($i = 0; $i < 100; $i++) {
    $fibers[] = new Fiber(function () use ($port, $cc, $i) {
        $s = quicpro_connect('localhost', $port, $cc);
        $a = quicpro_send_request($s, "/f$i");
        while (!$r = quicpro_receive_response($s, $a)) { quicpro_poll($s, 0); Fiber::suspend(); }
        $b = quicpro_send_request($s, "/f$i-2");
        while (!$r2 = quicpro_receive_response($s, $b)) { quicpro_poll($s, 0); Fiber::suspend(); }
        quicpro_close($s);
        return $r2['body'];
    });
}
foreach ($fibers as $f) $f->start();
$end = microtime(true) + 60;
do {
    $running = 0;
    foreach ($fibers as $f) { if (!$f->isTerminated()) { $running++; $f->resume(); } }
    usleep(200);
} while ($running > 0 && microtime(true) < $end);
$done = count(array_filter($fibers, fn($f) => $f->isTerminated() && $f->getReturn() === 'bye'));
echo "client fibers done: $done\n";
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
first responses: 1000
server had >= 900 suspended session Fibers at once: yes
second responses: 1000
client fibers done: 100
stop: clean
