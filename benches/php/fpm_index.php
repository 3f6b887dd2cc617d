<?php
// Caddy + PHP-FPM target of the load benchmark: the same `/bytes/<n>`
// routes as the other servers, the pattern read from a file the benchmark
// wrote (pattern.bin: one period of 251*256 bytes plus 256 KiB).
if (!preg_match('#^/bytes/(\d+)$#', $_SERVER['REQUEST_URI'] ?? '', $m)) {
    http_response_code(404);
    exit;
}
$n = (int) $m[1];
header('content-type: application/octet-stream');
header("content-length: $n");
$file = __DIR__ . '/pattern.bin';
for ($off = 0; $off < $n; $off += 262144) {
    $len = min(262144, $n - $off);
    echo file_get_contents($file, false, null, $off % (251 * 256), $len);
}
