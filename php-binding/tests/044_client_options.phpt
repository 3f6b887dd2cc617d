--TEST--
quicpro: the client takes the CLI's options through Config — qlog_dir (a qlog file per connection), keylog (SSLKEYLOGFILE), congestion_control (bbr), quic_version, ca_file; a bad one maps to ConfigException
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
            while ($req = $sess->receiveRequest()) { $req->respond(200); $req->sendBody(str_repeat('q', 300000), fin: true); }
        }))->start();
    }
});
qp_wait_up($port);
$dir = sys_get_temp_dir() . '/quicpro-client-opts-' . getmypid();
@mkdir($dir);
putenv("SSLKEYLOGFILE=$dir/keys.log");
$c = Config::new(['ca_file' => qp_cert(), 'qlog_dir' => "$dir/qlog", 'keylog' => true, 'congestion_control' => 'bbr', 'quic_version' => 'v2']);
$s = quicpro_connect('localhost', $port, $c);
echo "body: ", strlen($s->fetch('/big')['body']), "\n";
$s->close();
// The qlog writer thread writes behind: wait (bounded) for the close.
$end = microtime(true) + 10;
do {
    $files = glob("$dir/qlog/client-*.sqlog");
    $q = $files ? file_get_contents($files[0]) : '';
    if (str_contains($q, 'quic:connection_closed')) break;
    usleep(20000);
} while (microtime(true) < $end);
echo "qlog files: ", count($files), "\n";
echo "qlog has packets: ", str_contains($q, 'quic:packet_sent') && str_contains($q, 'quic:packet_received') ? 'yes' : 'no', "\n";
echo "qlog shows bbr: ", str_contains($q, '"probe_bw') || str_contains($q, '"startup"') ? 'yes' : 'no', "\n";
echo "qlog shows QUIC v2: ", str_contains($q, '6b3343cf') ? 'yes' : 'no', "\n";
$keys = @file_get_contents("$dir/keys.log") ?: '';
echo "key log: ", str_contains($keys, 'CLIENT_HANDSHAKE_TRAFFIC_SECRET') ? 'written' : 'missing', "\n";
try { Config::new(['qlog_dir' => []]); } catch (Quicpro\Exception\ConfigException $e) { echo "bad qlog_dir: ConfigException\n"; }
array_map('unlink', array_merge(glob("$dir/qlog/*"), glob("$dir/*.log")));
@rmdir("$dir/qlog"); @rmdir($dir);
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
body: 300000
qlog files: 1
qlog has packets: yes
qlog shows bbr: yes
qlog shows QUIC v2: yes
key log: written
bad qlog_dir: ConfigException
stop: clean
