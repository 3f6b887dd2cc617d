--TEST--
quicpro: the documents' fork-per-core server (§4), run as written, serves from every worker and stops on SIGTERM
--FILE--
<?php
require __DIR__ . '/util.inc';
$port = qp_free_port();
putenv("QP_PORT=$port");
$dir = qp_combined_cert_dir();
chdir($dir);
$log = "$dir/fork.out";
@unlink($log);
$pid = qp_fork(function () use ($log) { qp_capture_output($log); include __DIR__ . '/seeds/fork_per_core_server.php'; });
qp_wait_up($port);
$workers = (int) trim(shell_exec('nproc')) ?: 4;
$seen = [];
for ($i = 0; $i < 40; $i++) {
    $r = qp_get($port, "/x$i");
    if ($r['status'] !== 200 || !preg_match('/^hello from (\d+)$/', trim($r['body']), $m)) { echo "bad: ", json_encode($r), "\n"; }
    $seen[(int) $m[1]] = true;
}
echo "responses ok\n";
echo "workers answering > 0: ", count($seen) > 0 ? 'yes' : 'no', "\n";
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
$lines = array_values(array_filter(explode("\n", file_get_contents($log)), fn($l) => str_starts_with($l, '[worker')));
sort($lines);
echo count($lines) === $workers ? "all $workers workers ready\n" : "ready lines: " . implode('|', $lines) . "\n";
echo $lines[0], "\n";
?>
--EXPECTF--
responses ok
workers answering > 0: yes
stop: clean
all %d workers ready
[worker 0] ready
