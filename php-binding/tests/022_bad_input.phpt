--TEST--
quicpro: a port in use, calls on a closed session, oversized headers and a client that vanishes mid-response give the documented exceptions; the server keeps serving
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
use Quicpro\Exception\{SocketException, ConnectionException, StreamException, QuicproException};

// A port held by a socket without SO_REUSEPORT cannot be shared.
$hold = stream_socket_server('udp://127.0.0.1:0', $e1, $e2, STREAM_SERVER_BIND);
$busy = (int) substr(strrchr(stream_socket_get_name($hold, false), ':'), 1);
$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key(), 'max_header_size' => 4096]);
try { new Server('127.0.0.1', $busy, $cfg); echo "bound?!\n"; }
catch (SocketException $e) { echo "port in use: ", get_class($e), " code=", $e->getCode(), "\n"; }
fclose($hold);

$port = qp_free_port();
$pid = qp_fork(function () use ($cfg, $port) {
    $srv = new Server('127.0.0.1', $port, $cfg);
    while ($sess = $srv->accept(20)) {
        (new Fiber(function () use ($sess) {
            try {
                while ($req = $sess->receiveRequest()) {
                    $req->respond(200);
                    if ($req->path() === '/big') {
                        for ($i = 0; $i < 64; $i++) $req->sendBody(str_repeat('x', 1 << 20));
                        $req->finish();
                    } else {
                        $req->sendBody('ok ' . $req->path(), fin: true);
                    }
                }
            } catch (QuicproException $e) {
                // The client vanished: this session ends, the server goes on.
            }
        }))->start();
    }
});
qp_wait_up($port);

// Calls on a closed session.
$s = quicpro_connect('localhost', $port, qp_client_config());
quicpro_close($s);
try { quicpro_send_request($s, '/after-close'); echo "sent?!\n"; }
catch (ConnectionException $e) { echo "closed session: ", get_class($e), ": ", $e->getMessage(), "\n"; }

// A header section over the server's SETTINGS_MAX_FIELD_SECTION_SIZE.
$s = quicpro_connect('localhost', $port, qp_client_config());
try {
    $id = quicpro_send_request($s, '/huge', ['x-huge' => str_repeat('a', 20000)]);
    $end = microtime(true) + 10;
    while (!$r = quicpro_receive_response($s, $id)) { if (microtime(true) > $end) { echo "no answer\n"; break; } quicpro_poll($s, 5); }
    echo "oversized headers answered: ", json_encode($r['status'] ?? null), "\n";
} catch (QuicproException $e) { echo "oversized headers: ", get_class($e), "\n"; }
quicpro_close($s);

// A client that asks for 64 MB and disappears after the first bytes.
$s = quicpro_connect('localhost', $port, qp_client_config());
$id = quicpro_send_request($s, '/big');
quicpro_poll($s, 50);
unset($s);   // dropped without a close: the server sees silence, then the idle timeout

// Others are still served.
for ($i = 0; $i < 5; $i++) { echo qp_get($port, "/still-$i")['body'], "\n"; }
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECTF--
port in use: Quicpro\Exception\SocketException code=2
closed session: Quicpro\Exception\ConnectionException: the session is closed
oversized headers: %s
ok /still-0
ok /still-1
ok /still-2
ok /still-3
ok /still-4
stop: clean
