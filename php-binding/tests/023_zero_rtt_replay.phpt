--TEST--
quicpro: a replayed 0-RTT ClientHello (with its early request) is refused by every worker of a session_cache group
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
$port = qp_free_port();
$relay_port = qp_free_port();
$dir = qp_combined_cert_dir();
$seen = "$dir/requests.log";
$capture = "$dir/first-flight.bin";
@unlink($seen); @unlink($capture);

$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key(), 'session_cache' => true]);
$server = qp_fork(function () use ($cfg, $port, $seen) {
    for ($i = 0; $i < 4; $i++) {
        if (pcntl_fork() === 0) {
            $srv = new Server('127.0.0.1', $port, $cfg);
            while ($sess = $srv->accept(20)) {
                try {
                    while ($req = $sess->receiveRequest(5000)) {
                        file_put_contents($seen, $req->path() . "\n", FILE_APPEND | LOCK_EX);
                        $req->respond(200);
                        $req->sendBody('done', fin: true);
                    }
                } catch (Quicpro\Exception\QuicproException $e) {
                    // A client that went quiet (its close went through the relay we stop).
                }
            }
            exit(0);
        }
    }
    while (pcntl_wait($st) > 0);
});

// A UDP relay that records the client's first datagrams of each connection it carries.
$relay = qp_fork(function () use ($relay_port, $port, $capture) {
    $front = stream_socket_server("udp://127.0.0.1:$relay_port", $e1, $e2, STREAM_SERVER_BIND);
    $back = stream_socket_client("udp://127.0.0.1:$port", $e1, $e2);
    $client = null; $n = 0;
    while (true) {
        $r = [$front, $back]; $w = $x = null;
        if (!stream_select($r, $w, $x, 1)) continue;
        foreach ($r as $s) {
            if ($s === $front) {
                $d = stream_socket_recvfrom($front, 65535, 0, $client);
                if ($n < 3) { file_put_contents($capture, pack('N', strlen($d)) . $d, FILE_APPEND); $n++; }
                fwrite($back, $d);
            } else {
                $d = fread($back, 65535);
                if ($client !== null && $d !== false) stream_socket_sendto($front, $d, 0, $client);
            }
        }
    }
});
qp_wait_up($port);

// Connection 1 (direct): a full handshake that leaves a ticket.
qp_get($port, '/ticket');
// Connection 2 (through the relay): resumes and sends its request as 0-RTT; the relay records it.
$s = quicpro_connect('localhost', $relay_port, qp_client_config());
$id = quicpro_send_request($s, '/early-marker');
while (!$r = quicpro_receive_response($s, $id)) quicpro_poll($s, 5);
echo "0-RTT accepted: ", var_export($s->zeroRttAccepted(), true), "\n";
quicpro_close($s);
qp_stop($relay);

// Replay the recorded first flight from 8 new sockets (so the kernel spreads them over the workers).
$raw = file_get_contents($capture);
$dgrams = [];
for ($o = 0; $o < strlen($raw); ) { $len = unpack('N', substr($raw, $o, 4))[1]; $dgrams[] = substr($raw, $o + 4, $len); $o += 4 + $len; }
echo "recorded datagrams: ", count($dgrams) > 0 ? 'yes' : 'no', "\n";
$answered = 0;
for ($k = 0; $k < 8; $k++) {
    $u = stream_socket_client("udp://127.0.0.1:$port", $e1, $e2);
    foreach ($dgrams as $d) fwrite($u, $d);
    stream_set_timeout($u, 0, 300000);
    if (fread($u, 65535)) $answered++;   // the server does answer (a fresh handshake)...
    fclose($u);
}
echo "replays answered by the server: ", $answered > 0 ? 'yes' : 'no', "\n";
usleep(500000);
$paths = array_count_values(array_filter(explode("\n", file_get_contents($seen))));
// ...but the early request inside the replays never reaches the application.
echo "/early-marker served: ", $paths['/early-marker'] ?? 0, " time(s)\n";
echo "stop: ", qp_stop($server) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
0-RTT accepted: true
recorded datagrams: yes
replays answered by the server: yes
/early-marker served: 1 time(s)
stop: clean
