<?php
// A receiver written the way the original platform's documentation shows: it reads the
// signature from getallheaders() under the literal name HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256
// (a case-sensitive array lookup) and compares it with the HMAC of the raw body.
//
//   API_KEY=... INBOX_DIR=/var/lib/hotspot-inbox php -S 127.0.0.1:8000 examples/php/receiver.php
//
// Answer 200 only to a correctly signed request: anything else is retried. Delivery is
// at-least-once, so an event may arrive twice: it is kept once, in INBOX_DIR, and a copy
// already seen is answered 200 too (or it would be retried for two days).

$api_key = getenv('API_KEY');
$headers = getallheaders();
$body = file_get_contents('php://input');
$calculated = base64_encode(hash_hmac('sha256', $body, $api_key, true));

$literal = isset($headers['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256'])
    && hash_equals($calculated, $headers['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256']);
// The same signature as nginx/Apache/CGI expose it, from the X-Hotspotsystem-Hmac-Sha256 header.
$cgi = isset($_SERVER['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256'])
    && hash_equals($calculated, $_SERVER['HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256']);

// Keep the event once: true if it is new, false if this event id was received before.
// One file per event, named after a hash of its id (webhook-id, the same on every retry),
// written aside and then link()ed into place: link() fails if the name exists, so two copies
// arriving at once keep one, and a crash never leaves half a file. (No database needed: this
// PHP may lack pdo_sqlite.) A worker (cron) takes the files and does the slow work later.
function remember($inbox, $event_id, $event)
{
    if (!is_dir($inbox) && !@mkdir($inbox, 0700, true) && !is_dir($inbox)) {
        throw new RuntimeException("cannot create $inbox");
    }
    $final = $inbox . '/' . hash('sha256', $event_id) . '.json';
    $aside = tempnam($inbox, '.new-');
    try {
        if ($aside === false || file_put_contents($aside, json_encode($event)) === false) {
            throw new RuntimeException("cannot write in $inbox");
        }
        if (@link($aside, $final)) {
            return true;
        }
        if (file_exists($final)) {
            return false;
        }
        throw new RuntimeException("cannot link into $inbox");
    } finally {
        if ($aside !== false) {
            @unlink($aside);
        }
    }
}

$duplicate = null;
$status = 401;
if ($literal) {
    // Keep INBOX_DIR out of the web root and off tmpfs: it holds guests' personal data, and it
    // must outlive a reboot to recognise a retry. The default is only for trying this out.
    $inbox = getenv('INBOX_DIR')
        ?: sys_get_temp_dir() . '/hotspot-inbox-' . substr(hash('sha256', $api_key), 0, 12);
    $event_id = isset($_SERVER['HTTP_WEBHOOK_ID']) ? $_SERVER['HTTP_WEBHOOK_ID'] : '';
    if ($event_id === '') {
        $status = 400;  // every delivery carries webhook-id; without it there is no dedup
    } else {
        try {
            $duplicate = !remember($inbox, $event_id, array(
                'id' => $event_id,
                'type' => isset($_SERVER['HTTP_X_HOTSPOTSYSTEM_EVENT']) ? $_SERVER['HTTP_X_HOTSPOTSYSTEM_EVENT'] : null,
                'location_id' => isset($_SERVER['HTTP_X_HOTSPOTSYSTEM_LOCATION']) ? $_SERVER['HTTP_X_HOTSPOTSYSTEM_LOCATION'] : null,
                'payload' => json_decode($body, true),
            ));
            $status = 200;
        } catch (RuntimeException $e) {
            error_log($e->getMessage());
            $status = 500;  // not stored: an error, so that it is sent again
        }
    }
}

$log = getenv('RECEIVER_LOG');
if ($log) {
    $entry = array(
        'literal_header_verified' => $literal,
        'server_var_verified' => $cgi,
        'event' => isset($headers['X-Hotspotsystem-Event']) ? $headers['X-Hotspotsystem-Event'] : null,
        'payload' => json_decode($body, true),
        'duplicate' => $duplicate,
    );
    file_put_contents($log, json_encode($entry) . "\n", FILE_APPEND | LOCK_EX);
}

http_response_code($status);
echo array(200 => $duplicate ? 'OK (already received)' : 'OK', 400 => 'no webhook-id header',
           401 => 'invalid signature', 500 => 'could not store the event')[$status];
