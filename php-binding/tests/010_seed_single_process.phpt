--TEST--
quicpro: the documents' single-process Fiber server (§3) and parallel Fiber client (§2), run as written
--FILE--
<?php
require __DIR__ . '/util.inc';
$port = qp_free_port();
putenv("QP_PORT=$port");
$dir = qp_combined_cert_dir();
chdir($dir);
$log = "$dir/server.out";
@unlink($log);
$pid = qp_fork(function () use ($log) { qp_capture_output($log); include __DIR__ . '/seeds/single_process_server.php'; });
qp_wait_up($port);
putenv('SSL_CERT_FILE=' . qp_cert());   // trust the test certificate (the documents use a public host)
include __DIR__ . '/seeds/async_client.php';
echo "server exit: ", qp_stop($pid), "\n";
$out = file_exists($log) ? file_get_contents($log) : '';
// PHP itself warns about the snippet's `use Fiber;` in the global namespace; nothing else may appear.
echo "server output: ", trim(preg_replace('/^.*use statement with non-compound name.*$/m', '', $out)) === '' ? 'clean' : $out, "\n";
?>
--EXPECT--
echo /a

echo /b

echo /c

server exit: 0
server output: clean
