--TEST--
quicpro: a long-running server forgets sessions and streams once PHP dropped them and they ended (memory stays flat)
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
$port = qp_free_port();
$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key()]);
$pid = qp_fork(function () use ($cfg, $port) {
    $srv = new Server('127.0.0.1', $port, $cfg);
    while ($sess = $srv->accept(20)) {
        (new Fiber(function () use ($sess, $srv) {
            while ($req = $sess->receiveRequest()) {
                $req->respond(200);
                $body = $req->path() === '/stats' ? json_encode($srv->stats()) : str_repeat('k', 1000);
                $req->sendBody($body, fin: true);
            }
        }))->start();
    }
});
qp_wait_up($port);
$cc = qp_client_config();
// 300 connections, each with 3 requests on it, closed by the client.
for ($i = 0; $i < 300; $i++) {
    $s = quicpro_connect('localhost', $port, $cc);
    foreach ([1, 2, 3] as $k) {
        $id = quicpro_send_request($s, "/r$i-$k");
        while (!$r = quicpro_receive_response($s, $id)) quicpro_poll($s, 2);
        if (strlen($r['body']) !== 1000) echo "bad body\n";
    }
    quicpro_close($s);
}
usleep(300000);
$stats = json_decode(qp_get($port, '/stats')['body'], true);
echo "sessions kept after 300 closed connections: ", $stats['sessions'] <= 3 ? 'at most 3' : $stats['sessions'], "\n";
echo "connections open: ", $stats['connections'] <= 3 ? 'at most 3' : $stats['connections'], "\n";
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
sessions kept after 300 closed connections: at most 3
connections open: at most 3
stop: clean
