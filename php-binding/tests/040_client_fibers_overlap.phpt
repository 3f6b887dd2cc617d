--TEST--
quicpro: client Fibers under Quicpro\Loop run concurrently on one client socket — the §2 client's variant gets answers from a server that answers only once it holds all three requests; quicpro_await and Loop::run inside the loop
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
$port = qp_free_port();
$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key()]);
$pid = qp_fork(function () use ($cfg, $port) {
    $srv = new Server('127.0.0.1', $port, $cfg);
    $pending = [];
    while ($sess = $srv->accept(20)) {
        (new Fiber(function () use ($sess, &$pending) {
            while ($req = $sess->receiveRequest()) {
                if ($req->path() === '/up' || str_starts_with($req->path(), '/now')) {
                    $req->respond(200);
                    $req->sendBody('now ' . $req->path(), fin: true);
                    continue;
                }
                // Held until three requests are here, then all answered.
                $pending[] = $req;
                if (count($pending) < 3) continue;
                $n = count($pending);
                foreach ($pending as $p) {
                    $p->respond(200);
                    $p->sendBody("answered holding $n requests: " . $p->path(), fin: true);
                }
                $pending = [];
            }
        }))->start();
    }
});
qp_wait_up($port);
putenv("QP_PORT=$port");
putenv('SSL_CERT_FILE=' . qp_cert());
include __DIR__ . '/seeds/async_client_parallel.php';

// quicpro_await suspends a loop Fiber; Loop::run returns the Fiber's value;
// a task may be a plain callable. One session, three requests in flight.
$got = Quicpro\Loop::run(function () use ($port) {
    $s = quicpro_connect('localhost', $port, qp_client_config());
    $ids = [quicpro_send_request($s, '/x'), quicpro_send_request($s, '/y'), quicpro_send_request($s, '/z')];
    $out = [];
    foreach ($ids as $id) $out[] = quicpro_await($s, $id)['body'];
    $s->close();
    return $out;
});
echo implode("\n", $got), "\n";
// Keys are kept; Loop::inLoop is true only inside.
$r = Quicpro\Loop::all([
    'one' => function () use ($port) { $s = new Quicpro\ClientSession('localhost', $port, qp_client_config()); return [Quicpro\Loop::inLoop(), $s->fetch('/now1')['body']]; },
    'two' => function () use ($port) { $s = new Quicpro\ClientSession('localhost', $port, qp_client_config()); return [Quicpro\Loop::inLoop(), $s->fetch('/now2')['body']]; },
]);
echo json_encode($r), "\n";
echo "outside: ", var_export(Quicpro\Loop::inLoop(), true), "\n";
// A task's exception propagates from the loop, with the Fiber's file and line.
try {
    Quicpro\Loop::all([
        function () use ($port) { $s = quicpro_connect('localhost', $port, qp_client_config()); quicpro_poll($s, 20); throw new DomainException('task failed'); },
        function () use ($port) { $s = quicpro_connect('localhost', $port, qp_client_config()); return $s->fetch('/now3')['body']; },
    ]);
    echo "no exception\n";
} catch (DomainException $e) {
    echo "propagated: ", $e->getMessage(), "\n";
}
// A server that is not there: the loop Fiber gets the TimeoutException
// (without 0-RTT, which a ticket for "localhost" would allow at once).
try {
    Quicpro\Loop::run(fn() => quicpro_connect('localhost', qp_free_port(), qp_client_config(['handshake_timeout_ms' => 300, 'early_data' => false])));
} catch (Quicpro\Exception\QuicproException $e) {
    echo "connect in a loop Fiber: ", get_class($e), "\n";
}
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
answered holding 3 requests: /a
answered holding 3 requests: /b
answered holding 3 requests: /c
answered holding 3 requests: /x
answered holding 3 requests: /y
answered holding 3 requests: /z
{"one":[true,"now \/now1"],"two":[true,"now \/now2"]}
outside: false
propagated: task failed
connect in a loop Fiber: Quicpro\Exception\TimeoutException
stop: clean
