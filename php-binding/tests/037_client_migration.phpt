--TEST--
quicpro: the PHP client moves its connection to a new local port mid-session (active migration, RFC 9000 §9.2) and keeps fetching; quicpro_migrate returns the new address
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
        (new Fiber(function () use ($sess) {
            while ($req = $sess->receiveRequest()) {
                $req->respond(200);
                $req->sendBody(str_repeat('x', 200000) . $req->path(), fin: true);
            }
        }))->start();
    }
});
qp_wait_up($port);
$s = quicpro_connect('localhost', $port, qp_client_config());
$a = $s->fetch('/before');
echo "before: ", strlen($a['body']), " ", substr($a['body'], -7), "\n";
$first = quicpro_migrate($s);
$b = $s->fetch('/after1');
$second = $s->migrate();
$c = $s->fetch('/after2');
echo "after: ", substr($b['body'], -7), " ", substr($c['body'], -7), "\n";
echo "new local ports differ: ", ($first !== $second) ? 'yes' : 'no', "\n";
echo "migrations: ", $s->migrations(), "\n";
quicpro_close($s);
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
before: 200007 /before
after: /after1 /after2
new local ports differ: yes
migrations: 2
stop: clean
