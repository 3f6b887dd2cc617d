--TEST--
quicpro: certificate checks — an untrusted, expired or wrong-name server certificate throws TlsHandshakeException; mutual TLS ('client_ca_file' / 'client_cert_file'): a client with a certificate from the CA is served and Session::peerCertificateSubject() names it, clients without one or with another are refused, the worker keeps serving
--FILE--
<?php
require __DIR__ . '/util.inc';
use Quicpro\Config;
use Quicpro\Server;
use Quicpro\Exception\{TlsHandshakeException, QuicproException};

$dir = sys_get_temp_dir() . '/quicpro-phpt034-' . getmypid();
@mkdir($dir);
// Another self-signed certificate (a CA the server does not trust), and an
// expired one for localhost.
$other = openssl_pkey_new(['private_key_type' => OPENSSL_KEYTYPE_EC, 'curve_name' => 'prime256v1']);
$ext = "$dir/ext.cnf";
file_put_contents($ext, "[req]\ndistinguished_name=dn\n[dn]\n[leaf]\nbasicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost\n");
$mk = function ($key, string $cn, int $days) use ($ext) {
    $csr = openssl_csr_new(['commonName' => $cn], $key, ['config' => $ext, 'digest_alg' => 'sha256']);
    return openssl_csr_sign($csr, null, $key, $days, ['config' => $ext, 'x509_extensions' => 'leaf', 'digest_alg' => 'sha256'], random_int(1, PHP_INT_MAX));
};
openssl_x509_export($mk($other, 'mallory', 30), $pem);
openssl_pkey_export($other, $keyPem);
file_put_contents("$dir/other.pem", $pem);
file_put_contents("$dir/other.key", $keyPem);
// Valid for 0 days: notAfter is now, so it has expired a second later.
openssl_x509_export($mk($other, 'localhost', 0), $pem);
file_put_contents("$dir/expired.pem", $pem);
$expired_at = microtime(true);

function attempt(int $port, Config $cfg, string $label): void {
    try {
        $r = qp_get($port, '/who', $cfg);
        echo "$label: served ", $r['status'], " ", $r['body'], "\n";
    } catch (TlsHandshakeException $e) {
        echo "$label: TlsHandshakeException: ", $e->getMessage(), "\n";
    } catch (QuicproException $e) {
        echo "$label: ", get_class($e), ": ", $e->getMessage(), "\n";
    }
}

// A server that requires client certificates from the test CA (the test
// certificate is self-signed, so it is its own CA).
$port = qp_free_port();
$cfg = Config::new(['cert_file' => qp_cert(), 'key_file' => qp_key(), 'client_ca_file' => qp_cert()]);
$pid = qp_fork(function () use ($cfg, $port) {
    $srv = new Server('127.0.0.1', $port, $cfg);
    while ($sess = $srv->accept(20)) {
        (new Fiber(function () use ($sess) {
            while ($req = $sess->receiveRequest()) {
                $req->respond(200);
                $req->sendBody($sess->peerCertificateSubject() ?? 'no certificate', fin: true);
            }
        }))->start();
    }
});
$alice = qp_client_config(['client_cert_file' => qp_cert(), 'client_key_file' => qp_key(), 'handshake_timeout_ms' => 3000]);
$end = microtime(true) + 10;
while (true) {
    try { qp_get($port, '/up', $alice); break; }
    catch (QuicproException $e) { if (microtime(true) > $end) { echo "not up: ", $e->getMessage(), "\n"; break; } usleep(50000); }
}

attempt($port, $alice, 'client certificate from the CA');
attempt($port, qp_client_config(['handshake_timeout_ms' => 3000]), 'no client certificate');
attempt($port, qp_client_config(['client_cert_file' => "$dir/other.pem", 'client_key_file' => "$dir/other.key", 'handshake_timeout_ms' => 3000]), 'client certificate from another CA');
attempt($port, $alice, 'client certificate from the CA, again');

// Server certificates the client must refuse.
attempt($port, Config::new(['ca_file' => "$dir/other.pem", 'handshake_timeout_ms' => 3000]), 'untrusted server');
attempt($port, qp_client_config(['server_name' => 'example.com', 'client_cert_file' => qp_cert(), 'client_key_file' => qp_key(), 'handshake_timeout_ms' => 3000]), 'wrong name');
$port2 = qp_free_port();
$pid2 = qp_fork(function () use ($port2, $dir) {
    $srv = new Server('127.0.0.1', $port2, Config::new(['cert_file' => "$dir/expired.pem", 'key_file' => "$dir/other.key"]));
    while ($sess = $srv->accept(20)) {
        (new Fiber(function () use ($sess) { while ($req = $sess->receiveRequest()) { $req->respond(200); $req->sendBody('expired', fin: true); } }))->start();
    }
});
usleep(300000);
while (microtime(true) < $expired_at + 1.5) { usleep(100000); }
attempt($port2, Config::new(['ca_file' => "$dir/expired.pem", 'handshake_timeout_ms' => 3000]), 'expired server');

echo "stop: ", qp_stop($pid), " ", qp_stop($pid2), "\n";
array_map('unlink', glob("$dir/*"));
rmdir($dir);
?>
--EXPECTF--
client certificate from the CA: served 200 CN=rcgen self signed cert
no client certificate: TlsHandshakeException: %speer presented no certificate%S
client certificate from another CA: TlsHandshakeException: %scertificate not trusted: unknown issuer%S
client certificate from the CA, again: served 200 CN=rcgen self signed cert
untrusted server: TlsHandshakeException: %scertificate not trusted: unknown issuer%S
wrong name: TlsHandshakeException: %scertificate not valid for the server name%S
expired server: TlsHandshakeException: %scertificate expired%S
stop: 0 0
