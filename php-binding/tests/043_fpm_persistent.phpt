--TEST--
quicpro: persistent client connections under PHP-FPM — php-fpm8.2 (Debian) runs a script per FastCGI request (cgi-fcgi); with 'persistent' => true the next request of the same FPM worker reuses the worker's open connection: the server counts one handshake per worker
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
        (new Fiber(function () use ($sess, $srv) {
            while ($req = $sess->receiveRequest()) {
                $req->respond(200);
                $req->sendBody($req->path() === '/stats' ? json_encode($srv->stats()) : 'hello', fin: true);
            }
        }))->start();
    }
});
qp_wait_up($port);

// An FPM pool of two static workers, loading the extension under test.
$dir = sys_get_temp_dir() . '/quicpro-fpm-' . getmypid();
@mkdir($dir);
// The extension this PHP loaded, from the process's own mappings.
preg_match('#\S*/libquicpro\.so#', file_get_contents('/proc/self/maps'), $m);
$extPath = $m[0] ?? '';
file_put_contents("$dir/fetch.php", <<<'PHP'
<?php
$cfg = Quicpro\Config::new(['ca_file' => $_SERVER['QP_CERT'], 'persistent' => true]);
$s = quicpro_connect('localhost', (int) $_SERVER['QP_PORT'], $cfg);
$r = $s->fetch('/hello');
echo getmypid(), ' ', $s->isReused() ? 'reused' : 'new', ' ', $r['body'], "\n";
$s->close();
PHP);
file_put_contents("$dir/fpm.conf", "[global]\nerror_log = $dir/fpm.log\npid = $dir/fpm.pid\n[www]\nlisten = $dir/fpm.sock\npm = static\npm.max_children = 2\nclear_env = no\ncatch_workers_output = yes\n");
$fpm = proc_open(['/usr/sbin/php-fpm8.2', '-R', '-F', '-n', '-d', "extension=$extPath", '-y', "$dir/fpm.conf"], [0 => ['file', '/dev/null', 'r'], 1 => ['file', "$dir/fpm.out", 'w'], 2 => ['file', "$dir/fpm.out", 'a']], $pipes);
$end = microtime(true) + 10;
while (!file_exists("$dir/fpm.sock") && microtime(true) < $end) usleep(20000);
echo "fpm up: ", file_exists("$dir/fpm.sock") ? 'yes' : 'no: ' . @file_get_contents("$dir/fpm.out"), "\n";

$byWorker = [];
for ($i = 0; $i < 8; $i++) {
    $env = ['SCRIPT_FILENAME' => "$dir/fetch.php", 'REQUEST_METHOD' => 'GET', 'QP_PORT' => (string) $port, 'QP_CERT' => qp_cert(), 'PATH' => getenv('PATH')];
    $p = proc_open(['cgi-fcgi', '-bind', '-connect', "$dir/fpm.sock"], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pp, null, $env);
    $out = stream_get_contents($pp[1]); $err = stream_get_contents($pp[2]);
    proc_close($p);
    if (!preg_match('/^(\d+) (new|reused) hello$/m', $out, $m)) { echo "request $i: unexpected output: $out $err\n"; continue; }
    $byWorker[$m[1]][] = $m[2];
}
$workers = count($byWorker);
$pattern = true;
foreach ($byWorker as $flags) {
    // A worker's first request connects; every later one reuses.
    $pattern = $pattern && $flags[0] === 'new' && count(array_unique(array_slice($flags, 1))) <= 1 && (count($flags) === 1 || $flags[1] === 'reused');
}
echo "requests answered: ", array_sum(array_map('count', $byWorker)), "\n";
echo "first request of each worker new, the rest reused: ", $pattern ? 'yes' : json_encode($byWorker), "\n";
// The server's count: the test's own two connections (qp_wait_up, this
// one) plus one handshake per FPM worker.
$stats = json_decode(qp_get($port, '/stats')['body'], true);
echo "handshakes per FPM worker: ", ($stats['connections_accepted'] - 2) === $workers ? 'one' : ($stats['connections_accepted'] - 2) . " for $workers workers", "\n";
proc_terminate($fpm, SIGTERM);
proc_close($fpm);
array_map('unlink', glob("$dir/*"));
@rmdir($dir);
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
fpm up: yes
requests answered: 8
first request of each worker new, the rest reused: yes
handshakes per FPM worker: one
stop: clean
