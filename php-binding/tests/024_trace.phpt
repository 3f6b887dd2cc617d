--TEST--
quicpro: QP_TRACE=1 writes trace lines for handshakes and ticket-cache lookups and a qlog per connection; SDT tracepoints are in the binary
--FILE--
<?php
require __DIR__ . '/util.inc';
$port = qp_free_port();
$dir = qp_combined_cert_dir() . '/qlog';
@mkdir($dir);
array_map('unlink', glob("$dir/*"));
$script = sprintf(<<<'PHP'
$cfg = Quicpro\Config::new(['cert_file' => %s, 'key_file' => %s, 'session_cache' => true]);
$srv = new Quicpro\Server('127.0.0.1', %d, $cfg);
while ($s = $srv->accept(20)) { while ($r = $s->receiveRequest()) { $r->respond(200); $r->sendBody('t', fin: true); } }
PHP, var_export(qp_cert(), true), var_export(qp_key(), true), $port);
// The loaded extension's path, from this process's own mappings.
preg_match('#\s(/\S*quicpro\S*\.so)$#m', file_get_contents('/proc/self/maps'), $m);
$ext = $m[1];
$cmd = sprintf('QP_TRACE=1 QP_QLOG_DIR=%s exec %s -n -d extension=%s -r %s 2>%s',
    escapeshellarg($dir), escapeshellarg(PHP_BINARY), escapeshellarg($ext), escapeshellarg($script), escapeshellarg("$dir/../trace.err"));
$proc = proc_open($cmd, [], $pipes);
qp_wait_up($port);
qp_get($port, '/one');
qp_get($port, '/two');
proc_terminate($proc, SIGTERM);
$end = microtime(true) + 10;
while (proc_get_status($proc)['running'] && microtime(true) < $end) usleep(20000);
proc_close($proc);
$err = file_get_contents("$dir/../trace.err");
echo "listening line: ", str_contains($err, 'listening on 127.0.0.1') ? 'yes' : 'no', "\n";
echo "handshake lines: ", preg_match_all('/handshake done .* resumed=(true|false)/', $err) >= 2 ? 'yes' : 'no', "\n";
echo "ticket cache put: ", preg_match('/ticket cache Put Stored key=[0-9a-f]{16}\.\. \(\d+ bytes\)/', $err) ? 'yes' : 'no', "\n";
echo "ticket cache lookup: ", preg_match('/ticket cache (Get|Take) (Hit|Miss)/', $err) ? 'yes' : 'no', "\n";
$qlogs = glob("$dir/*.sqlog");
echo "qlog files: ", count($qlogs) >= 2 ? 'yes' : 'no', "\n";
echo "qlog has events: ", $qlogs && str_contains(file_get_contents($qlogs[0]), 'packet_') ? 'yes' : 'no', "\n";
$notes = (string) shell_exec('readelf -n ' . escapeshellarg($ext) . ' 2>/dev/null');
foreach (['ticket_cache', 'handshake_done', 'session_accept', 'session_close'] as $p) {
    echo "sdt $p: ", preg_match("/Provider: quicpro\\s+Name: $p/", $notes) ? 'yes' : 'no', "\n";
}
?>
--EXPECT--
listening line: yes
handshake lines: yes
ticket cache put: yes
ticket cache lookup: yes
qlog files: yes
qlog has events: yes
sdt ticket_cache: yes
sdt handshake_done: yes
sdt session_accept: yes
sdt session_close: yes
