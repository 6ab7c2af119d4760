"""Text an operator copies: an attempt as a curl command, and receivers that verify our
signature, filled in with the webhook's API key. Pure functions of their inputs."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from ..receiver import ORIGINAL_HEADER


def curl_command(url: str, headers: Mapping[str, str], body: bytes) -> str:
    """A shell command that sends one attempt again: the same headers (names in their wire
    case, signatures included) and the event's exact body bytes, so the receiver's signature
    check passes as it did (Standard Webhooks receivers also check the timestamp's age)."""
    lines = [f"curl -sS {shlex.quote(url)}"]
    lines += [f"-H {shlex.quote(f'{name}: {value}')}" for name, value in headers.items()]
    lines.append("-H 'Expect:'")  # no 100-continue round trip for larger bodies
    lines.append(f"--data-binary {shlex.quote(body.decode('utf-8', errors='replace'))}")
    return " \\\n  ".join(lines)


def php_receiver(api_key: str) -> str:
    """The original platform's PHP receiver, with this key."""
    server_key = "HTTP_" + ORIGINAL_HEADER.upper().replace("-", "_")
    return f"""<?php
// Verify a hotspot-webhooks delivery (the original platform's signature).
$apiKey = {_php_string(api_key)};
$body = file_get_contents('php://input');
$expected = base64_encode(hash_hmac('sha256', $body, $apiKey, true));
$given = $_SERVER['{server_key}'] ?? '';
if (!hash_equals($expected, $given)) {{
    http_response_code(401);
    exit('bad signature');
}}
$event = json_decode($body, true);
$type = $_SERVER['HTTP_X_HOTSPOTSYSTEM_EVENT'] ?? '';
// At-least-once: skip an event id seen before ($_SERVER['HTTP_WEBHOOK_ID']).
// ... keep $event ...
http_response_code(200);
echo 'OK';
"""


def python_receiver(api_key: str) -> str:
    """A receiver using the stdlib-only SDK (``hotspot_webhooks.receiver``), with this key."""
    return f"""# hotspot_webhooks/receiver.py needs the standard library only: copy it if you like
from hotspot_webhooks.receiver import InvalidSignature, parse

API_KEY = {api_key!r}


def handle(headers: dict[str, str], body: bytes) -> int:
    \"\"\"Answer 200 to a delivery signed with our key, 401 to anything else.\"\"\"
    try:
        event = parse(headers, body, API_KEY)
    except InvalidSignature:
        return 401
    # at-least-once: event.id is the same on every retry; skip ids seen before
    print(event.type, event.location_id, event.data)
    return 200
"""


def _php_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
