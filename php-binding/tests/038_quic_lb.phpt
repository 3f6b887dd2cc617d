--TEST--
quicpro: a PHP server issuing QUIC-LB connection IDs (server_id, encrypted with lb_key; draft-ietf-quic-load-balancers) serves as usual; bad QUIC-LB options name their key
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
$port = qp_free_port();
$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key(), 'server_id' => '0a0b0c',
    'lb_key' => '8f95f09245765f80256934e50c66207f', 'lb_config_rotation' => 2]);
$pid = qp_fork(function () use ($cfg, $port) {
    $srv = new Server('127.0.0.1', $port, $cfg);
    while ($sess = $srv->accept(20)) {
        (new Fiber(function () use ($sess) {
            while ($req = $sess->receiveRequest()) {
                $req->respond(200);
                $req->sendBody('lb ' . $req->path(), fin: true);
            }
        }))->start();
    }
});
qp_wait_up($port);
echo qp_get($port, '/x')['body'], "\n";
foreach ([['lb_key' => '00'], ['server_id' => 'xyz'], ['server_id' => '01', 'lb_key' => '0011'],
          ['server_id' => str_repeat('ab', 16)], ['lb_config_rotation' => 7]] as $bad) {
    try {
        Config::new($bad);
        echo "accepted?!\n";
    } catch (Quicpro\Exception\ConfigException $e) {
        echo $e->getMessage(), "\n";
    }
}
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
lb /x
option 'lb_key': needs server_id
option 'server_id': 'xyz' is not an even number of hex digits
option 'lb_key': 16 octets (32 hex digits)
option 'server_id': server ID and nonce exceed 19 octets
option 'lb_config_rotation': 7 is out of range 0..=6
stop: clean
