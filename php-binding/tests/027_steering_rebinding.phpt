--TEST--
quicpro: fork-per-core workers with connection-ID steering; a client whose NAT rebinding changes its source port three times mid-download stays on its worker and the download completes
--SKIPIF--
<?php if (posix_geteuid() !== 0) die('skip SO_REUSEPORT eBPF steering needs root (CAP_BPF); CI runs as root'); ?>
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
$port = qp_free_port();
$relay_port = qp_free_port();
$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key(), 'session_cache' => true]);
$size = 4 << 20;
$server = qp_fork(function () use ($cfg, $port, $size) {
    for ($i = 0; $i < 4; $i++) {
        if (pcntl_fork() === 0) {
            $srv = new Server('127.0.0.1', $port, $cfg);
            while ($sess = $srv->accept(20)) {
                while ($req = $sess->receiveRequest()) {
                    $req->respond(200);
                    if ($req->path() === '/stats') { $req->sendBody(json_encode($srv->stats()), fin: true); continue; }
                    $tag = "worker {$srv->workerId()}|";
                    $req->sendBody($tag);
                    for ($o = 0; $o < $size; $o += 65536) $req->sendBody(str_repeat(chr(97 + ($o >> 16) % 26), 65536));
                    $req->finish();
                }
            }
            exit(0);
        }
    }
    while (pcntl_wait($st) > 0);
});
// A NAT: forwards the client's datagrams from an upstream socket that it replaces (closing
// the old one) after 40, 80 and 120 datagrams, so the server sees new source ports.
$relay = qp_fork(function () use ($relay_port, $port) {
    $front = stream_socket_server("udp://127.0.0.1:$relay_port", $e1, $e2, STREAM_SERVER_BIND);
    $back = stream_socket_client("udp://127.0.0.1:$port", $e1, $e2);
    $client = null; $n = 0; $switches = 0;
    while (true) {
        $r = [$front, $back]; $w = $x = null;
        if (!stream_select($r, $w, $x, 1)) continue;
        foreach ($r as $s) {
            if ($s === $front) {
                $d = stream_socket_recvfrom($front, 65535, 0, $client);
                if (++$n % 40 === 0 && $switches < 3) {
                    fclose($back);
                    $back = stream_socket_client("udp://127.0.0.1:$port", $e1, $e2);
                    $switches++;
                }
                fwrite($back, $d);
            } elseif ($s === $back) {
                $d = fread($back, 65535);
                if ($client !== null && $d !== false && $d !== '') stream_socket_sendto($front, $d, 0, $client);
            }
        }
    }
});
qp_wait_up($port);
$s = quicpro_connect('localhost', $relay_port, qp_client_config(['max_idle_ms' => 10000]));
$id = quicpro_send_request($s, '/big');
$end = microtime(true) + 60;
while (!$r = quicpro_receive_response($s, $id)) { if (microtime(true) > $end) die("download stalled\n"); quicpro_poll($s, 5); }
quicpro_close($s);
[$tag, $body] = explode('|', $r['body'], 2);
$expect = '';
for ($o = 0; $o < $size; $o += 65536) $expect .= str_repeat(chr(97 + ($o >> 16) % 26), 65536);
echo "download through three rebindings: ", $body === $expect ? 'intact' : 'CORRUPT (' . strlen($body) . ' bytes)', "\n";
$stats = json_decode(qp_get($port, '/stats')['body'], true);
echo "steered by connection ID: ", $stats['steered_by_cid'] > 100 ? 'yes' : json_encode($stats), "\n";
echo "steering fallbacks: ", $stats['steering_fallbacks'], "\n";
qp_stop($relay);
echo "stop: ", qp_stop($server) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
download through three rebindings: intact
steered by connection ID: yes
steering fallbacks: 0
stop: clean
