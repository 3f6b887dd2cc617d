--TEST--
quicpro: headless Chromium, forced onto HTTP/3, renders a page from the seed demo (ticket_resumption_multiworker.php, run as written but for port and certificate)
--SKIPIF--
<?php if (!is_executable('/usr/bin/chromium')) die('skip chromium not installed'); ?>
--FILE--
<?php
require __DIR__ . '/util.inc';
$port = qp_free_port();
putenv("QP_PORT=$port");
putenv('CERT_FILE=' . qp_cert());
putenv('KEY_FILE=' . qp_key());
$argv = ['demo', '2'];
$pid = qp_fork(function () { global $argv; include __DIR__ . '/seeds/ticket_resumption_multiworker.php'; });
qp_wait_up($port);

// Chromium trusts the test certificate by its key hash; the origin is
// forced onto QUIC (there is no TCP listener to fall back to).
$spki = trim((string) shell_exec('openssl x509 -in ' . escapeshellarg(qp_cert()) . ' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64'));
$profile = sys_get_temp_dir() . '/qp-chromium-' . getmypid();
$cmd = implode(' ', array_map('escapeshellarg', [
    '/usr/bin/chromium', '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    "--user-data-dir=$profile", "--origin-to-force-quic-on=localhost:$port",
    '--host-resolver-rules=MAP localhost 127.0.0.1', "--ignore-certificate-errors-spki-list=$spki",
    '--dump-dom', "https://localhost:$port/hello-from-chromium",
])) . ' 2>/dev/null';
$dom = (string) shell_exec("timeout 60 $cmd");
echo preg_match('#echo from worker \d: /hello-from-chromium#', $dom) ? "DOM has the demo's answer\n" : "DOM: $dom\n";
exec('rm -rf ' . escapeshellarg($profile));
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
DOM has the demo's answer
stop: clean
