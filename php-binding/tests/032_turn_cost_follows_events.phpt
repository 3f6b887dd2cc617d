--TEST--
quicpro: the server loop's work per turn follows what happened, not the sessions held — serving requests with 300 idle sessions (each a Fiber parked in receiveRequest) visits no more per turn than with 10
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
$port = qp_free_port();

$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key(), 'alpn' => ['h3']]);
$pid = qp_fork(function () use ($cfg, $port) {
    $srv = new Server('127.0.0.1', $port, $cfg);
    while ($sess = $srv->accept(20)) {
        (new Fiber(function () use ($sess, $srv) {
            while ($req = $sess->receiveRequest()) {
                $req->respond(200);
                $body = $req->path() === '/stats' ? json_encode($srv->stats()) : 'ok';
                $req->sendBody($body, fin: true);
            }
        }))->start();
    }
});
qp_wait_up($port);

function stats(int $port): array { return json_decode(qp_get($port, '/stats')['body'], true); }

/** Loop work per turn while one connection makes 300 requests. */
function visits_per_turn(int $port): array {
    $a = stats($port);
    $s = quicpro_connect('localhost', $port, qp_client_config());
    for ($i = 0; $i < 300; $i++) {
        $id = quicpro_send_request($s, "/r$i");
        while (!quicpro_receive_response($s, $id)) quicpro_poll($s, 5);
    }
    quicpro_close($s);
    $b = stats($port);
    $turns = max(1, $b['turns'] - $a['turns']);
    return [($b['turn_visits'] - $a['turn_visits']) / $turns, $b['sessions'], $b['waiting_fibers']];
}

/** Idle sessions: one request each, then the connection stays open. */
$idle = [];
function open_idle(int $port, int $n, array &$idle): void {
    for ($i = 0; $i < $n; $i++) {
        $s = quicpro_connect('localhost', $port, qp_client_config());
        $id = quicpro_send_request($s, "/idle$i");
        while (!quicpro_receive_response($s, $id)) quicpro_poll($s, 5);
        $idle[] = $s;
    }
}

open_idle($port, 10, $idle);
[$v10, $sess10, $fib10] = visits_per_turn($port);
open_idle($port, 290, $idle);
[$v300, $sess300, $fib300] = visits_per_turn($port);
printf("held: %d then %d sessions, %d then %d parked Fibers\n", $sess10 >= 10 ? 10 : $sess10, $sess300 >= 300 ? 300 : $sess300, $fib10 >= 10 ? 10 : $fib10, $fib300 >= 300 ? 300 : $fib300);
printf("visits per turn: %.2f with 10 idle sessions, %.2f with 300\n", $v10, $v300);
echo "per-turn work independent of held sessions: ", $v300 <= $v10 * 1.5 + 2 ? 'yes' : "no ($v10 vs $v300)", "\n";
foreach ($idle as $s) quicpro_close($s);
echo "stop: ", qp_stop($pid) === 0 ? 'clean' : 'not clean', "\n";
?>
--EXPECTF--
held: 10 then 300 sessions, 10 then 300 parked Fibers
visits per turn: %f with 10 idle sessions, %f with 300
per-turn work independent of held sessions: yes
stop: clean
