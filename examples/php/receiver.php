<?php
// A receiver written the way the original platform's documentation shows: it reads the
// signature from getallheaders() under the literal name HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256
// (a case-sensitive array lookup) and compares it with the HMAC of the raw body.
//
//   API_KEY=... php -S 127.0.0.1:8000 examples/php/receiver.php
//
// Answer 200 only to a correctly signed request: anything else is retried.

$api_key = getenv('API_KEY');
$headers = getallheaders();
$body = file_get_contents('php://input');
$calculated = base64_encode(hash_hmac('sha256', $body, $api_key, true));

$literal = isset($headers['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256'])
    && hash_equals($calculated, $headers['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256']);
// The same signature as nginx/Apache/CGI expose it, from the X-Hotspotsystem-Hmac-Sha256 header.
$cgi = isset($_SERVER['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256'])
    && hash_equals($calculated, $_SERVER['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256']);

$log = getenv('RECEIVER_LOG');
if ($log) {
    $entry = array(
        'literal_header_verified' => $literal,
        'server_var_verified' => $cgi,
        'event' => isset($headers['X-Hotspotsystem-Event']) ? $headers['X-Hotspotsystem-Event'] : null,
        'payload' => json_decode($body, true),
    );
    file_put_contents($log, json_encode($entry) . "\n", FILE_APPEND | LOCK_EX);
}

if ($literal) {
    http_response_code(200);
    echo "OK";
} else {
    http_response_code(401);
    echo "invalid signature";
}
