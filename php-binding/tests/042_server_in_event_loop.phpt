--TEST--
quicpro: a PHP server driven by another event loop — Server::getStream() is readable when the server has work; amphp's Loop::onReadable calls tryAccept() and session Fibers serve while an amphp timer runs; stream_select drives a server the same way
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
require '/usr/share/php/Amp/autoload.php';
require_once '/usr/share/php/Amp/functions.php';
require_once '/usr/share/php/Amp/Internal/functions.php';

function serve_session($sess, callable $ticks): void {
    while ($req = $sess->receiveRequest()) {
        $req->respond(200);
        $req->sendBody($req->path() . ' ticks>0=' . ($ticks() > 0 ? 'yes' : 'no'), fin: true);
    }
}
$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key()]);

// amphp: the server lives in amphp's loop beside a 2 ms repeat timer.
$port = qp_free_port();
$pid = qp_fork(function () use ($cfg, $port) {
    $ticks = 0;
    Amp\Loop::run(function () use ($cfg, $port, &$ticks) {
        $srv = new Server('127.0.0.1', $port, $cfg);
        Amp\Loop::repeat(2, function () use (&$ticks) { $ticks++; });
        Amp\Loop::onReadable($srv->getStream(), function () use ($srv, &$ticks) {
            while ($sess = $srv->tryAccept()) {
                (new Fiber(fn() => serve_session($sess, fn() => $ticks)))->start();
            }
        });
        Amp\Loop::onSignal(SIGTERM, fn() => Amp\Loop::stop());
    });
});
qp_wait_up($port);
for ($i = 0; $i < 3; $i++) {
    $s = quicpro_connect('localhost', $port, qp_client_config());
    echo "amp: ", $s->fetch("/amp$i")['body'], " | ", $s->fetch("/again$i")['body'], "\n";
    $s->close();
}
echo "amp server stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";

// stream_select: the same with a hand-written loop and a 5 ms timer.
$port = qp_free_port();
$pid = qp_fork(function () use ($cfg, $port) {
    $srv = new Server('127.0.0.1', $port, $cfg);
    $st = $srv->getStream();
    $ticks = 0;
    pcntl_async_signals(true);
    $stop = false;
    pcntl_signal(SIGTERM, function () use (&$stop) { $stop = true; });
    while (!$stop) {
        $r = [$st]; $w = null; $e = null;
        if (@stream_select($r, $w, $e, 0, 5000) > 0) {
            while ($sess = $srv->tryAccept()) {
                (new Fiber(fn() => serve_session($sess, fn() => $ticks)))->start();
            }
        } else {
            $ticks++;
        }
    }
});
qp_wait_up($port);
// Nothing to do for a while: the stream goes quiet and select times out
// (the loop's timer ticks) rather than spinning.
usleep(300000);
$s = quicpro_connect('localhost', $port, qp_client_config());
echo "select: ", $s->fetch('/sel')['body'], "\n";
$s->close();
echo "select server stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
amp: /amp0 ticks>0=yes | /again0 ticks>0=yes
amp: /amp1 ticks>0=yes | /again1 ticks>0=yes
amp: /amp2 ticks>0=yes | /again2 ticks>0=yes
amp server stop: clean
select: /sel ticks>0=yes
select server stop: clean
