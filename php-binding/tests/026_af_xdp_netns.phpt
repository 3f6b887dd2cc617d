--TEST--
quicpro: QUICPRO_XDP — two forked PHP workers serve over AF_XDP (one per veth queue) in a network namespace; a PHP client in another namespace fetches over IPv4 and IPv6
--SKIPIF--
<?php if (posix_geteuid() !== 0) die('skip needs root (network namespaces, XDP); CI runs as root'); ?>
--FILE--
<?php
require __DIR__ . '/util.inc';
preg_match('#\s(/\S*quicpro\S*\.so)$#m', file_get_contents('/proc/self/maps'), $m);
$ext = $m[1];
$id = 'qp' . (getmypid() % 100000);
$sns = "{$id}s"; $cns = "{$id}c";
function sh(string $cmd): string {
    exec($cmd . ' 2>&1', $out, $rc);
    if ($rc !== 0) throw new RuntimeException("$cmd: " . implode("\n", $out));
    return implode("\n", $out);
}
$cleanup = function () use ($sns, $cns) { exec("ip netns del $sns 2>/dev/null; ip netns del $cns 2>/dev/null"); };
register_shutdown_function($cleanup);
try {
    sh("ip netns add $sns");
    sh("ip netns add $cns");
    sh("ip -n $sns link add $sns numrxqueues 2 numtxqueues 2 type veth peer name $cns netns $cns numrxqueues 2 numtxqueues 2");
    foreach ([[$sns, '198.18.0.1', '2001:2::1'], [$cns, '198.18.0.2', '2001:2::2']] as [$ns, $v4, $v6]) {
        sh("ip -n $ns addr add $v4/24 dev $ns");
        sh("ip -n $ns -6 addr add $v6/64 dev $ns nodad");
        sh("ip -n $ns link set lo up");
        sh("ip -n $ns link set $ns up");
    }
    $mac = fn($ns) => preg_match('#link/ether (\S+)#', sh("ip -n $ns link show $ns"), $mm) ? $mm[1] : '';
    sh("ip -n $sns neigh replace 198.18.0.2 lladdr {$mac($cns)} dev $sns nud permanent");
    sh("ip -n $sns -6 neigh replace 2001:2::2 lladdr {$mac($cns)} dev $sns nud permanent");
    sh("ip -n $cns neigh replace 198.18.0.1 lladdr {$mac($sns)} dev $cns nud permanent");
    sh("ip -n $cns -6 neigh replace 2001:2::1 lladdr {$mac($sns)} dev $cns nud permanent");

    $dir = qp_combined_cert_dir();
    $server = <<<'PHP'
$cfg = Quicpro\Config::new(['cert_file' => getenv('QP_CERT'), 'key_file' => getenv('QP_KEY'), 'session_cache' => true]);
for ($i = 0; $i < 2; $i++) {
    if (pcntl_fork() === 0) {
        $srv = new Quicpro\Server('[::]', 4433, $cfg);
        fwrite(STDERR, "worker {$srv->workerId()} backend: {$srv->backend()}\n");
        while ($s = $srv->accept(20)) {
            while ($r = $s->receiveRequest()) {
                $r->respond(200);
                $r->sendBody(str_repeat(chr(65 + $srv->workerId()), 200000) . "|worker {$srv->workerId()}", fin: true);
            }
        }
        exit(0);
    }
}
while (pcntl_wait($st) > 0);
PHP;
    $env = sprintf('QUICPRO_XDP=%s QP_CERT=%s QP_KEY=%s', $sns, escapeshellarg(qp_cert()), escapeshellarg(qp_key()));
    $cmd = sprintf('exec ip netns exec %s env %s %s -n -d extension=%s -r %s 2>%s', $sns, $env, escapeshellarg(PHP_BINARY),
        escapeshellarg($ext), escapeshellarg($server), escapeshellarg("$dir/xdp-server.err"));
    $proc = proc_open($cmd, [], $pipes);
    usleep(800000);

    $client = <<<'PHP'
$cfg = Quicpro\Config::new(['ca_file' => getenv('QP_CERT'), 'server_name' => 'localhost', 'handshake_timeout_ms' => 3000]);
// Each connection from its own client process: a process's connections
// share one UDP socket, and the veth's RSS spreads flows over its queues
// (so over the workers) by their addresses and ports.
$ok = 0; $workers = [];
foreach (['198.18.0.1', '2001:2::1'] as $host) {
    for ($i = 0; $i < 12; $i++) {
        $pid = pcntl_fork();
        if ($pid === 0) {
            for ($try = 0; $try < 5; $try++) {
                try { $s = quicpro_connect($host, 4433, $cfg); break; } catch (Quicpro\Exception\QuicproException $e) { usleep(200000); }
            }
            $id = quicpro_send_request($s, "/x$i");
            while (!$r = quicpro_receive_response($s, $id)) quicpro_poll($s, 5);
            [$body, $tag] = explode('|', $r['body']);
            $w = (int) substr($tag, 7);
            $intact = $r['status'] === 200 && $body === str_repeat(chr(65 + $w), 200000);
            quicpro_close($s);
            exit(10 + 2 * $w + ($intact ? 1 : 0));
        }
        pcntl_waitpid($pid, $status);
        $code = pcntl_wifexited($status) ? pcntl_wexitstatus($status) : 0;
        if ($code >= 10) {
            $workers[intdiv($code - 10, 2)] = true;
            $ok += ($code - 10) % 2;
        }
    }
}
echo "responses intact: $ok/24\n";
echo "workers that answered: ", count($workers), "\n";
PHP;
    echo sh(sprintf('ip netns exec %s env QP_CERT=%s %s -n -d extension=%s -r %s', $cns, escapeshellarg(qp_cert()),
        escapeshellarg(PHP_BINARY), escapeshellarg($ext), escapeshellarg($client))), "\n";
    proc_terminate($proc, SIGTERM);
    exec("ip netns pids $sns", $pids);
    foreach ($pids as $p) posix_kill((int) $p, SIGTERM);
    $end = microtime(true) + 10;
    while (proc_get_status($proc)['running'] && microtime(true) < $end) usleep(20000);
    proc_close($proc);
    $err = file_get_contents("$dir/xdp-server.err");
    echo "AF_XDP backend in both workers: ", substr_count($err, 'af_xdp') >= 2 ? 'yes' : "no\n$err", "\n";
    preg_match_all('/queue (\d) \(copy bind, xdp native mode, prog id (\d+)\)/', $err, $q);
    sort($q[1]);
    echo "queues: ", implode(',', $q[1]), "; one XDP program shared by the worker processes: ", count(array_unique($q[2])) === 1 ? 'yes' : 'no', "\n";
    echo "XDP program after the workers exited: ";
    echo str_contains(sh("ip -n $sns -d link show $sns"), 'prog/xdp') ? "still attached\n" : "detached\n";
} finally {
    $cleanup();
}
echo "namespaces left: ", (str_contains(sh('ip netns list'), $sns) || str_contains(sh('ip netns list'), $cns)) ? 'yes' : 'none', "\n";
?>
--EXPECT--
responses intact: 24/24
workers that answered: 2
AF_XDP backend in both workers: yes
queues: 0,1; one XDP program shared by the worker processes: yes
XDP program after the workers exited: detached
namespaces left: none
