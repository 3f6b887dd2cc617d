--TEST--
quicpro: the PHP client keeps the server's NEW_TOKEN tokens for the process — against 'retry' => 'always' only the first connection meets a Retry; the next ones present a token (RFC 9000 §8.1.3)
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
$port = qp_free_port();
$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key(), 'retry' => 'always']);
$pid = qp_fork(function () use ($cfg, $port) {
    $srv = new Server('127.0.0.1', $port, $cfg);
    while ($sess = $srv->accept(20)) {
        (new Fiber(function () use ($sess, $srv) {
            while ($req = $sess->receiveRequest()) {
                $req->respond(200);
                $req->sendBody($req->path() === '/stats' ? json_encode($srv->stats()) : 'ok', fin: true);
            }
        }))->start();
    }
});
qp_wait_up($port);
// Five more connections, each a new quicpro_connect.
for ($i = 0; $i < 5; $i++) {
    if (qp_get($port, "/r$i")['body'] !== 'ok') echo "bad body\n";
}
$stats = json_decode(qp_get($port, '/stats')['body'], true);
echo "connections accepted: ", $stats['connections_accepted'] >= 7 ? 'at least 7' : $stats['connections_accepted'], "\n";
echo "Retries sent: {$stats['retries_sent']}\n";
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
connections accepted: at least 7
Retries sent: 1
stop: clean
