--TEST--
quicpro: any event loop can drive the client — quicpro_stream() is readable when the process's client endpoint has work; stream_select and amphp's Loop::onReadable (Debian's php-amphp-amp) fetch through it while their timers run; an idle endpoint's stream goes quiet
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
            while ($req = $sess->receiveRequest()) {
                $req->respond(200);
                $req->sendBody(str_repeat('.', 100000) . $req->path(), fin: true);
            }
        }))->start();
    }
});
qp_wait_up($port);

// 1. stream_select: the loop sleeps in select, with its own 10 ms timer.
$s = quicpro_connect('localhost', $port, qp_client_config());
$st = quicpro_stream();
echo "stream: ", get_resource_type($st), "\n";
$id = quicpro_send_request($s, '/select');
$wakeups = 0; $ticks = 0; $end = microtime(true) + 10;
while (!($r = quicpro_receive_response($s, $id)) && microtime(true) < $end) {
    $read = [$st]; $w = null; $e = null;
    if (stream_select($read, $w, $e, 0, 10000) > 0) { $wakeups++; quicpro_client_poll(0); }
    else { $ticks++; }
}
echo "select: ", substr($r['body'] ?? 'none', -7), ", woke on the stream: ", $wakeups > 0 ? 'yes' : 'no', "\n";
// Once the exchange is over and its ACKs are sent, the stream goes quiet:
// select times out rather than spinning.
$quiet = false;
for ($i = 0; $i < 50 && !$quiet; $i++) {
    $read = [$st]; $w = null; $e = null;
    if (stream_select($read, $w, $e, 0, 300000) === 0) { $quiet = true; } else { quicpro_client_poll(0); }
}
echo "idle stream quiet: ", $quiet ? 'yes' : 'no', "\n";

// 2. amphp 2.6 (Debian's php-amphp-amp): onReadable drives the client
// while a repeat timer ticks; two requests on two sessions.
// Debian's autoloader maps the classes; amphp's function files are loaded
// by hand (composer's "files" autoload does that elsewhere).
require '/usr/share/php/Amp/autoload.php';
require_once '/usr/share/php/Amp/functions.php';
require_once '/usr/share/php/Amp/Internal/functions.php';
$bodies = []; $ampTicks = 0;
Amp\Loop::run(function () use ($port, $st, &$bodies, &$ampTicks) {
    $a = quicpro_connect('localhost', $port, qp_client_config());
    $b = quicpro_connect('localhost', $port, qp_client_config());
    $want = [[$a, quicpro_send_request($a, '/amp-a')], [$b, quicpro_send_request($b, '/amp-b')]];
    $timer = Amp\Loop::repeat(2, function () use (&$ampTicks) { $ampTicks++; });
    $guard = Amp\Loop::delay(10000, fn() => Amp\Loop::stop());
    Amp\Loop::onReadable($st, function ($watcher) use (&$want, &$bodies, $timer, $guard) {
        quicpro_client_poll(0);
        foreach ($want as $k => [$sess, $id]) {
            if ($r = quicpro_receive_response($sess, $id)) { $bodies[] = substr($r['body'], -6); unset($want[$k]); quicpro_close($sess); }
        }
        if (!$want) { Amp\Loop::cancel($watcher); Amp\Loop::cancel($timer); Amp\Loop::cancel($guard); }
    });
});
sort($bodies);
echo "amp: ", implode(' ', $bodies), ", timer ran: ", $ampTicks > 0 ? 'yes' : 'no', "\n";
quicpro_close($s);
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
stream: stream
select: /select, woke on the stream: yes
idle stream quiet: yes
amp: /amp-a /amp-b, timer ran: yes
stop: clean
