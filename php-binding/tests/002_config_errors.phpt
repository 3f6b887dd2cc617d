--TEST--
quicpro: Config rejects unknown keys, wrong types and unreadable files, naming the key; exceptions keep file and line
--FILE--
<?php
use Quicpro\Config;
use Quicpro\Exception\ConfigException;
$cases = [
    ['cert_fil' => 'x'],
    ['max_idle_ms' => 'soon'],
    ['max_idle_ms' => -5],
    ['alpn' => []],
    ['alpn' => [42]],
    ['session_cache' => 'yes'],
    ['cert_file' => '/nonexistent/cert.pem'],
    ['key_file' => '/tmp/k.pem'],
    ['congestion_control' => 'vegas'],
    ['hystart' => 'off'],
    ['retry' => 'sometimes'],
];
foreach ($cases as $c) {
    try {
        Config::new($c);
        echo "no exception\n";
    } catch (ConfigException $e) {
        echo get_class($e), ' code=', $e->getCode(), ': ', $e->getMessage(), ' @', basename($e->getFile()), ':', $e->getLine(), "\n";
    }
}
echo quicpro_get_last_error_code(), ' ', quicpro_get_last_error() !== '' ? 'set' : 'empty', "\n";
$ok = Config::new(['alpn' => ['h3'], 'max_idle_ms' => 5000, 'session_cache' => true, 'congestion_control' => 'newreno', 'hystart' => false]);
var_dump($ok->alpn(), $ok->maxIdleMs(), $ok->sessionCache());
echo "bbr accepted: ", get_class(Config::new(['congestion_control' => 'BBR'])), "\n";
$srvless = Config::new([]);
try { new Quicpro\Server('127.0.0.1', 0, $srvless); } catch (ConfigException $e) { echo "server without cert: ", $e->getMessage(), "\n"; }
?>
--EXPECTF--
Quicpro\Exception\ConfigException code=1: unknown option 'cert_fil' (known: %s) @002_config_errors.php:19
Quicpro\Exception\ConfigException code=1: option 'max_idle_ms': expected int, got string @002_config_errors.php:19
Quicpro\Exception\ConfigException code=1: option 'max_idle_ms': -5 is out of range 1..=86400000 @002_config_errors.php:19
Quicpro\Exception\ConfigException code=1: option 'alpn': at least one protocol is needed @002_config_errors.php:19
Quicpro\Exception\ConfigException code=1: option 'alpn': expected array of strings, found int @002_config_errors.php:19
Quicpro\Exception\ConfigException code=1: option 'session_cache': expected bool, got string @002_config_errors.php:19
Quicpro\Exception\ConfigException code=1: option 'cert_file': /nonexistent/cert.pem: %s @002_config_errors.php:19
Quicpro\Exception\ConfigException code=1: option 'key_file': given without cert_file @002_config_errors.php:19
Quicpro\Exception\ConfigException code=1: option 'congestion_control': unknown congestion controller 'vegas' (cubic, newreno or bbr) @002_config_errors.php:19
Quicpro\Exception\ConfigException code=1: option 'hystart': expected bool, got string @002_config_errors.php:19
Quicpro\Exception\ConfigException code=1: option 'retry': unknown retry policy 'sometimes' (never, always, under_load) @002_config_errors.php:19
1 set
array(1) {
  [0]=>
  string(2) "h3"
}
int(5000)
bool(true)
bbr accepted: Quicpro\Config
server without cert: a server needs 'cert_file' (and 'key_file' unless the key is in the same file)
