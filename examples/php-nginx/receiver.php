<?php
// A receiver behind nginx + PHP-FPM, reading headers the CGI way, from $_SERVER.
//
// nginx drops request headers with underscores in their names (underscores_in_headers off,
// the default), so the literal HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256 header never gets here. The
// same signature also comes as X-Hotspotsystem-Hmac-Sha256, which FastCGI hands to PHP as
// $_SERVER['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256']. nginx.conf and php-fpm-pool.conf beside this
// file show the rest: API_KEY and INBOX_DIR come from the pool.
//
// Answers: 200 for a verified event, new or already received (delivery is at-least-once, and
// anything but 200 is retried); 401 for a bad signature; 500 if it could not be stored.

$api_key = getenv('API_KEY');
$body = file_get_contents('php://input');
$signature = isset($_SERVER['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256']) ? $_SERVER['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256'] : '';
$calculated = base64_encode(hash_hmac('sha256', $body, $api_key, true));

if (!hash_equals($calculated, $signature)) {  // constant time: no byte-by-byte guessing
    http_response_code(401);
    exit('invalid signature');
}

// webhook-id is the event id, the same on every retry of the event: the key to deduplicate on.
$event_id = isset($_SERVER['HTTP_WEBHOOK_ID']) ? $_SERVER['HTTP_WEBHOOK_ID'] : '';
if ($event_id === '') {
    http_response_code(400);
    exit('no webhook-id header');
}

// One file per event in INBOX_DIR (outside the web root: it holds guests' personal data),
// named after a hash of the event id. Written aside, then link()ed into place: link() fails
// when the name exists, so of two copies arriving at once one is kept, and a crash never
// leaves half a file. A worker (cron, a queue consumer) takes the files and does the slow
// work, so this request is answered at once.
$inbox = getenv('INBOX_DIR') ?: '/var/lib/hotspot-inbox';
$final = $inbox . '/' . hash('sha256', $event_id) . '.json';
$aside = @tempnam($inbox, '.new-');
$event = json_encode(array(
    'id' => $event_id,
    'type' => isset($_SERVER['HTTP_X_HOTSPOTSYSTEM_EVENT']) ? $_SERVER['HTTP_X_HOTSPOTSYSTEM_EVENT'] : null,
    'location_id' => isset($_SERVER['HTTP_X_HOTSPOTSYSTEM_LOCATION']) ? $_SERVER['HTTP_X_HOTSPOTSYSTEM_LOCATION'] : null,
    'payload' => json_decode($body, true),
));
$stored = $aside !== false && file_put_contents($aside, $event) !== false;
$new = $stored && @link($aside, $final);
if ($aside !== false) {
    @unlink($aside);
}
if (!$new && !($stored && file_exists($final))) {
    error_log("hotspot receiver: cannot store event $event_id in $inbox");
    http_response_code(500);  // not stored: an error, so that it is sent again
    exit('could not store the event');
}

error_log(($new ? 'received ' : 'already received ') . $event_id);
http_response_code(200);
echo $new ? 'OK' : 'OK (already received)';
