--TEST--
quicpro: no client can end a worker — seed-style loops without try/catch while clients close with H3_NO_ERROR, an application error, a transport error, vanish, reset a stream mid-response, flood unknown connection IDs, or stop halfway through the handshake; receiveRequest() returns null for every ended session and a well-behaved client is served throughout
--SKIPIF--
<?php if (trim((string) shell_exec('python3 -c "import aioquic; print(1)" 2>/dev/null')) !== '1') die('skip aioquic not installed'); ?>
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
$port = qp_free_port();
$log = tempnam(sys_get_temp_dir(), 'qp031');

$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key(), 'alpn' => ['h3'], 'max_idle_ms' => 1500]);
$pid = qp_fork(function () use ($cfg, $port, $log) {
    $srv = new Server('127.0.0.1', $port, $cfg);
    // The documents' loop, as a user writes it: no try/catch, return
    // values of the response methods ignored.
    while ($sess = $srv->accept(20)) {
        (new Fiber(function () use ($sess, $log) {
            while ($req = $sess->receiveRequest()) {
                $req->respond(200, ['content-type' => 'text/plain']);
                if ($req->path() === '/big') {
                    for ($i = 0; $i < 32; $i++) $req->sendBody(str_repeat('x', 1 << 20));
                    $req->finish();
                } else {
                    $req->sendBody("ok {$req->path()}\n", fin: true);
                }
            }
            file_put_contents($log, "ended: " . ($sess->closeReason() ?? 'open') . "\n", FILE_APPEND | LOCK_EX);
        }))->start();
    }
});
qp_wait_up($port);

$peer = realpath(__DIR__ . '/peers/abuse_client.py');
foreach (['graceful', 'app-error', 'transport', 'vanish', 'reset', 'garbage', 'handshake'] as $mode) {
    $out = trim((string) shell_exec("timeout 30 python3 " . escapeshellarg($peer) . " $port $mode 2>&1"));
    echo "$mode: ", str_contains($out, "done $mode") ? 'done' : "client failed: $out", "\n";
    // A well-behaved client right after each: the worker is alive.
    echo "  served: ", trim(qp_get($port, "/after-$mode")['body']), "\n";
}
// The vanished client's session ends by the idle timeout (1.5 s).
sleep(3);
echo "still served: ", trim(qp_get($port, '/last')['body']), "\n";
$ended = file($log, FILE_IGNORE_NEW_LINES);
// Every session that reached PHP ended with receiveRequest() === null:
// 1 (qp_wait_up) + 7 probes + 6 abusers that sent a request + 1 last.
echo "sessions ended with null: ", count($ended) >= 14 ? 'all' : count($ended), "\n";
foreach (['idle timeout', 'closed by peer application: 0x10c', 'closed by peer: PROTOCOL_VIOLATION'] as $why) {
    echo "saw '$why': ", count(array_filter($ended, fn ($l) => str_contains($l, $why))) > 0 ? 'yes' : 'no', "\n";
}
echo "stop: ", qp_stop($pid) === 0 ? 'clean' : 'not clean', "\n";
@unlink($log);
?>
--EXPECT--
graceful: done
  served: ok /after-graceful
app-error: done
  served: ok /after-app-error
transport: done
  served: ok /after-transport
vanish: done
  served: ok /after-vanish
reset: done
  served: ok /after-reset
garbage: done
  served: ok /after-garbage
handshake: done
  served: ok /after-handshake
still served: ok /last
sessions ended with null: all
saw 'idle timeout': yes
saw 'closed by peer application: 0x10c': yes
saw 'closed by peer: PROTOCOL_VIOLATION': yes
stop: clean
