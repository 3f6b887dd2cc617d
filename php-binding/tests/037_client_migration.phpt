--TEST--
quicpro: the PHP client moves its connection to a new local port mid-session (active migration, RFC 9000 §9.2) and keeps fetching; quicpro_migrate returns the new address; a PHP server announcing a preferred_address (RFC 9000 §9.6) sees the PHP client move there
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
// A server bound to 0.0.0.0 announcing 127.0.0.2 (its own port).
$port2 = qp_free_port();
$cfg2 = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key(), 'preferred_address' => '127.0.0.2']);
$pid2 = qp_fork(function () use ($cfg2, $port2) {
    $srv = new Server('0.0.0.0', $port2, $cfg2);
    while ($sess = $srv->accept(20)) {
        (new Fiber(function () use ($sess) {
            while ($req = $sess->receiveRequest()) {
                $req->respond(200);
                $req->sendBody('moved ' . $req->path(), fin: true);
            }
        }))->start();
    }
});
qp_wait_up($port2);
$s = quicpro_connect('127.0.0.1', $port2, qp_client_config(['server_name' => 'localhost']));
$s->fetch('/one');
$r = $s->fetch('/two');
echo "{$r['body']}, migrations: ", $s->migrations(), "\n";
quicpro_close($s);
try {
    Config::new(['preferred_address' => 'nowhere']);
} catch (Quicpro\Exception\ConfigException $e) {
    echo $e->getMessage(), "\n";
}
echo "stop: ", qp_stop($pid2) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
before: 200007 /before
after: /after1 /after2
new local ports differ: yes
migrations: 2
stop: clean
moved /two, migrations: 1
option 'preferred_address': 'nowhere' is not an IP address or IP:PORT
stop: clean
