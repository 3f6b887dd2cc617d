--TEST--
quicpro: ticket_resumption_multiworker.php demo: echo from a worker, resumed TLS session on the second connection
--FILE--
<?php
require __DIR__ . '/util.inc';
$port = qp_free_port();
putenv("QP_PORT=$port");
putenv('CERT_FILE=' . qp_cert());
putenv('KEY_FILE=' . qp_key());
$argv = ['demo', '4'];
$pid = qp_fork(function () { global $argv; include __DIR__ . '/seeds/ticket_resumption_multiworker.php'; });
qp_wait_up($port);
$r = qp_get($port, '/foo');
echo preg_replace('/worker \d/', 'worker N', $r['body']);
// Second connection: a new socket (so possibly another worker), the ticket from before.
$s = quicpro_connect('localhost', $port, qp_client_config());
$id = quicpro_send_request($s, '/bar');
while (!$r2 = quicpro_receive_response($s, $id)) { quicpro_poll($s, 5); }
echo preg_replace('/worker \d/', 'worker N', $r2['body']);
echo "TLS session resumed: ", quicpro_is_resumed($s) ? 'yes' : 'no', "\n";
quicpro_close($s);
echo "stop: ", qp_stop($pid) >= 0 ? 'clean' : 'forced', "\n";
?>
--EXPECT--
echo from worker N: /foo
echo from worker N: /bar
TLS session resumed: yes
stop: clean
