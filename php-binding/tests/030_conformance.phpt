--TEST--
quicpro: a PHP server answers all 139 conformance cases (RFC 9000/9001/9114/9204/9218/9368 violations) with their codes, and keeps serving
--SKIPIF--
<?php
if (!is_executable(__DIR__ . '/../../target/debug/conformance')) die('skip target/debug/conformance not built (make test-php builds it)');
?>
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
$port = qp_free_port();
$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key()]);
$pid = qp_fork(function () use ($cfg, $port) {
    $srv = new Server('127.0.0.1', $port, $cfg);
    while ($sess = $srv->accept(30)) {
        (new Fiber(function () use ($sess) {
            while ($req = $sess->receiveRequest()) {
                $req->respond(200);
                $req->sendBody('ok', fin: true);
            }
        }))->start();
    }
});
qp_wait_up($port);
// The raw client of the conformance suite: every case on its own connection.
$bin = __DIR__ . '/../../target/debug/conformance';
exec(escapeshellarg($bin) . " --server 127.0.0.1:$port --ca " . escapeshellarg(qp_cert()) . ' 2>&1', $out, $status);
echo implode("\n", array_filter($out, fn ($l) => str_starts_with($l, 'FAIL') || str_starts_with($l, 'conformance:'))), "\n";
echo "exit status: $status\n";
// No hostile peer ended the worker: it still answers a request.
$r = qp_get($port, '/after');
echo "after the suite: {$r['status']} {$r['body']}\n";
echo "server stopped: ", qp_stop($pid) >= 0 ? 'yes' : 'no', "\n";
?>
--EXPECT--
conformance: 138 passed, 0 failed, 1 not applicable
exit status: 0
after the suite: 200 ok
server stopped: yes
