--TEST--
quicpro: aioquic's HTTP/3 client against a PHP server (sequential GETs, a 10 MB download, a 5 MB upload with SHA-256)
--SKIPIF--
<?php if (trim((string) shell_exec('python3 -c "import aioquic; print(1)" 2>/dev/null')) !== '1') die('skip aioquic not installed'); ?>
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
$port = qp_free_port();

/** Body byte i is (i*7 + i/251) & 0xff, the pattern of the interop peers. */
function pattern(int $offset, int $n): string {
    static $block = null;
    if ($block === null) { $block = ''; for ($i = 0; $i < 251 * 256 * 2; $i++) $block .= chr(($i * 7 + intdiv($i, 251)) & 0xff); }
    $out = '';
    while (strlen($out) < $n) { $start = ($offset + strlen($out)) % (251 * 256); $out .= substr($block, $start, min($n - strlen($out), 251 * 256)); }
    return $out;
}

$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key(), 'alpn' => ['h3'], 'max_body_size' => 64 << 20]);
$pid = qp_fork(function () use ($cfg, $port) {
    $srv = new Server('127.0.0.1', $port, $cfg);
    while ($sess = $srv->accept(20)) {
        (new Fiber(function () use ($sess) {
            while ($req = $sess->receiveRequest()) {
                $path = $req->path();
                if (preg_match('#^/bytes/(\d+)$#', $path, $m)) {
                    $n = (int) $m[1];
                    $req->respond(200, ['content-length' => $n]);
                    for ($off = 0; $off < $n; $off += 262144) {
                        $req->sendBody(pattern($off, min(262144, $n - $off)), fin: $off + 262144 >= $n);
                    }
                    if ($n === 0) $req->finish();
                } elseif ($path === '/sha256') {
                    $ctx = hash_init('sha256');
                    while (($chunk = $req->read()) !== null) hash_update($ctx, $chunk);
                    $req->respond(200);
                    $req->sendBody(hash_final($ctx), fin: true);
                } else {
                    $req->respond(404);
                    $req->finish();
                }
            }
        }))->start();
    }
});
qp_wait_up($port, '/bytes/1');
$peer = realpath(__DIR__ . '/../../tests/interop/aioquic_h3_peer.py');
$cases = ['sequential --count 200', 'download --size 10485760', 'upload --size 5242880'];
foreach ($cases as $c) {
    $out = shell_exec("timeout 120 python3 $peer client --host 127.0.0.1 --port $port --cafile " . escapeshellarg(qp_cert()) . " --case $c 2>&1");
    preg_match('/^RESULT case=(\S+) ok=(\d)/m', (string) $out, $m);
    echo ($m[1] ?? '?'), ': ', (($m[2] ?? '0') === '1') ? 'ok' : "FAILED\n$out", "\n";
}
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
sequential: ok
download: ok
upload: ok
stop: clean
