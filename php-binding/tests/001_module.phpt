--TEST--
quicpro: module loads, INI, constants, classes and exception tree
--FILE--
<?php
var_dump(extension_loaded('quicpro'));
var_dump(ini_get('quicpro.shm_size'));
var_dump(QUICPRO_ERR_CONFIG, QUICPRO_ERR_TIMEOUT);
foreach (['Quicpro\Config', 'Quicpro\Server', 'Quicpro\Session', 'Quicpro\Stream', 'Quicpro\ClientSession'] as $c) {
    echo $c, ': ', class_exists($c) ? 'yes' : 'no', "\n";
}
foreach (['ConfigException', 'SocketException', 'TlsHandshakeException', 'ConnectionException', 'TransportException',
          'StreamException', 'TimeoutException', 'ServerException', 'ClientException'] as $e) {
    $c = "Quicpro\\Exception\\$e";
    echo $e, ': ', get_parent_class($c), ' runtime=', is_subclass_of($c, RuntimeException::class) ? 'yes' : 'no', "\n";
}
ob_start(); phpinfo(INFO_MODULES); $info = ob_get_clean();
var_dump(str_contains($info, 'quicpro.shm_size'), str_contains($info, 'shared ticket cache entries'));
$stats = quicpro_shm_stats();
var_dump($stats['capacity'] > 100);
?>
--EXPECT--
bool(true)
string(5) "65536"
int(1)
int(7)
Quicpro\Config: yes
Quicpro\Server: yes
Quicpro\Session: yes
Quicpro\Stream: yes
Quicpro\ClientSession: yes
ConfigException: Quicpro\Exception\QuicproException runtime=yes
SocketException: Quicpro\Exception\QuicproException runtime=yes
TlsHandshakeException: Quicpro\Exception\ConnectionException runtime=yes
ConnectionException: Quicpro\Exception\QuicproException runtime=yes
TransportException: Quicpro\Exception\ConnectionException runtime=yes
StreamException: Quicpro\Exception\QuicproException runtime=yes
TimeoutException: Quicpro\Exception\QuicproException runtime=yes
ServerException: Quicpro\Exception\QuicproException runtime=yes
ClientException: Quicpro\Exception\QuicproException runtime=yes
bool(true)
bool(true)
bool(true)
