--TEST--
quicpro: 4 workers sharing the SHM ticket cache: 50 clients connect twice; every second connection resumes, also on another worker; 0-RTT accepted across workers
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
$port = qp_free_port();
$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key(), 'alpn' => ['h3'], 'session_cache' => true]);
$pid = qp_fork(function () use ($cfg, $port) {
    for ($i = 0; $i < 4; $i++) {
        if (pcntl_fork() === 0) {
            $srv = new Server('127.0.0.1', $port, $cfg);
            while ($sess = $srv->accept(50)) {
                try {
                    $st = $sess->receiveRequest(5000);
                    $st->respond(200, ['content-type' => 'application/json']);
                    $st->sendBody(json_encode(['worker' => $i, 'resumed' => $sess->isResumed()]), fin: true);
                } catch (Quicpro\Exception\QuicproException $e) {}
                $sess->close();
            }
            exit(0);
        }
    }
    while (pcntl_wait($st) > 0);
});
qp_wait_up($port);
$resumed = 0; $server_saw_resumed = 0; $other_worker = 0; $zero_rtt = 0;
for ($c = 0; $c < 50; $c++) {
    $first = json_decode(qp_get($port, "/c$c-1")['body'], true);
    $s = quicpro_connect('localhost', $port, qp_client_config());
    $id = quicpro_send_request($s, "/c$c-2");
    $end = microtime(true) + 10;
    while (!$r = quicpro_receive_response($s, $id)) { if (microtime(true) > $end) die("timeout\n"); quicpro_poll($s, 5); }
    $second = json_decode($r['body'], true);
    if (quicpro_is_resumed($s)) $resumed++;
    if ($second['resumed']) $server_saw_resumed++;
    if ($second['worker'] !== $first['worker']) $other_worker++;
    if ($s->zeroRttAccepted() === true) $zero_rtt++;
    quicpro_close($s);
}
echo "second connections resumed (client): $resumed/50\n";
echo "second connections resumed (server): $server_saw_resumed/50\n";
echo "0-RTT accepted: $zero_rtt/50\n";
echo "some resumed on another worker: ", $other_worker > 0 ? 'yes' : 'no', "\n";
echo "cross-worker resumptions: $other_worker/50\n";
$stats = quicpro_shm_stats();
echo "shared cache hits > 0: ", $stats['hits'] > 0 ? 'yes' : 'no', "\n";
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECTF--
second connections resumed (client): 50/50
second connections resumed (server): 50/50
0-RTT accepted: 50/50
some resumed on another worker: yes
cross-worker resumptions: %d/50
shared cache hits > 0: yes
stop: clean
