--TEST--
quicpro: QUIC versions in Config — a v1-only server answers a client starting in v2 with Version Negotiation and the client starts over in v1 (RFC 9368 §2.1); a client that speaks only v2 gets a documented exception; the packet-size keys (max_udp_payload_size, mtu_discovery)
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
function serve(int $port, array $opts): int {
    $cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key()] + $opts);
    return qp_fork(function () use ($cfg, $port) {
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
}
$v1only = qp_free_port();
$pid1 = serve($v1only, ['versions' => ['v1']]);
qp_wait_up($v1only);
$r = qp_get($v1only, '/a', qp_client_config(['quic_version' => 'v2']));
echo "v2 client, v1-only server: {$r['body']}\n";
$stats = json_decode(qp_get($v1only, '/stats')['body'], true);
echo "Version Negotiation packets sent: {$stats['version_negotiations_sent']}\n";
try {
    qp_get($v1only, '/b', qp_client_config(['quic_version' => 'v2', 'versions' => 'v2', 'handshake_timeout_ms' => 3000]));
    echo "v2-only client: connected?!\n";
} catch (Quicpro\Exception\QuicproException $e) {
    echo "v2-only client: ", get_class($e), "\n";
}
try {
    Config::new(['quic_version' => 'v3']);
} catch (Quicpro\Exception\ConfigException $e) {
    echo $e->getMessage(), "\n";
}
// Packet size knobs (RFC 8899 path MTU discovery): a client pinned at
// 1200 bytes still fetches; out-of-range values name their key.
$r = qp_get($v1only, '/c', qp_client_config(['mtu_discovery' => false, 'max_udp_payload_size' => 1200]));
echo "pinned at 1200: {$r['body']}\n";
try {
    Config::new(['max_udp_payload_size' => 1000]);
} catch (Quicpro\Exception\ConfigException $e) {
    echo $e->getMessage(), "\n";
}
echo "stop: ", qp_stop($pid1) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECTF--
v2 client, v1-only server: ok
Version Negotiation packets sent: 1
v2-only client: Quicpro\Exception\%s
option 'quic_version': unknown QUIC version 'v3' (v1 or v2)
pinned at 1200: ok
option 'max_udp_payload_size': 1000 is out of range 1200..=65527
stop: clean
