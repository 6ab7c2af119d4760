"""Signing (SPEC §2): the original HMAC header, Standard Webhooks, and the stdlib receiver SDK."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hotspot_webhooks import __version__
from hotspot_webhooks.receiver import InvalidSignature, parse, verify_signature
from hotspot_webhooks.signing import (
    DeliveryRequest,
    Signer,
    compute_signature,
    compute_standard_signature,
    delivery_headers,
    signing_secret,
)

# SPEC §3 reference example, serialized compactly in catalog order (the stored body bytes).
REFERENCE_BODY = (
    b'{"id":"59243583","UserName":"BE-72-B3-40-F9-BE","name":null,'
    b'"email":"myname@gmail.com","company_name":null,"address":null,"city":null,'
    b'"state":null,"zip":null,"country_code":"AR","phone":"+54","fb_id":null,'
    b'"fb_username":null,"fb_link":null,"fb_gender":null,'
    b'"registered_at":"2022-08-27 13:35:53"}'
)
API_KEY = "hsk_reference-api-key-2022"
# Computed once, by hand, with Python's hmac (see the expected_* helpers below), and pasted:
# base64(HMAC-SHA256(key=API_KEY, msg=REFERENCE_BODY)).
REFERENCE_SIGNATURE = "3vkuJRWaWo9mtUJMAHI9SLt5P3ceg/UUi8yogQYmam8="
# v1 Standard Webhooks signature of "evt_1.1661607353." + REFERENCE_BODY under API_KEY.
REFERENCE_STANDARD_SIGNATURE = "v1,lpr5MyZBTEpUX15vfE5WvNaRrn/aj0NrwkyRBcdVjDE="

REQUEST = DeliveryRequest(
    event_id="evt_1",
    event_type="customer.create",
    location_id="loc-42",
    delivery_id="dlv_9",
    attempt=3,
)


def expected_original(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def expected_standard(msg_id: str, ts: int, body: bytes, key: str) -> str:
    message = f"{msg_id}.{ts}.".encode() + body
    digest = hmac.new(key.encode(), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


# --- the original signature ----------------------------------------------------------------


def test_original_signature_of_reference_body_matches_hard_coded_vector() -> None:
    assert compute_signature(REFERENCE_BODY, API_KEY) == REFERENCE_SIGNATURE


def test_original_signature_is_base64_hmac_sha256_of_raw_body_under_api_key() -> None:
    assert compute_signature(REFERENCE_BODY, API_KEY) == expected_original(REFERENCE_BODY, API_KEY)


def test_original_signature_signs_the_body_bytes_exactly_as_given() -> None:
    body = '{"city":"Café"}'.encode()
    assert compute_signature(body, "k") == expected_original(body, "k")
    assert compute_signature(body, "k") != compute_signature(body + b" ", "k")


def test_a_keyed_signer_signs_each_message_anew_whichever_hmac_object_it_copies() -> None:
    signer = Signer(API_KEY)
    wrapped = Signer(API_KEY)
    wrapped._keyed = hmac.new(API_KEY.encode(), digestmod="sha256")  # the fallback: the wrapper
    for _ in range(2):  # the keyed state is copied, never consumed by a signature
        for body in (REFERENCE_BODY, b"", "Caf\u00e9".encode() * 500):
            assert signer.sign(body) == wrapped.sign(body) == expected_original(body, API_KEY)
    assert Signer("clé-ünïcode").sign(b"{}") == expected_original(b"{}", "clé-ünïcode")


def test_api_key_is_used_as_utf8_bytes() -> None:
    key = "clé-ünïcode"
    assert compute_signature(b"{}", key) == expected_original(b"{}", key)


def test_standard_signature_matches_hard_coded_vector() -> None:
    signature = compute_standard_signature("evt_1", 1661607353, REFERENCE_BODY, API_KEY)
    assert signature == REFERENCE_STANDARD_SIGNATURE


# --- delivery headers ----------------------------------------------------------------------


def headers_for(keys: list[str], ts: int = 1661607353) -> dict[str, str]:
    return delivery_headers(REQUEST, REFERENCE_BODY, [Signer(key) for key in keys], ts)


def test_original_signature_is_sent_under_canonical_and_literal_php_names_with_same_value() -> None:
    headers = headers_for([API_KEY])
    assert headers["X-Hotspotsystem-Hmac-Sha256"] == REFERENCE_SIGNATURE
    assert headers["HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256"] == REFERENCE_SIGNATURE


def test_literal_php_header_name_is_upper_case_exactly() -> None:
    names = list(headers_for([API_KEY]))
    assert "HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256" in names
    assert [n for n in names if n.lower() == "http_x_hotspotsystem_hmac_sha256"] == [
        "HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256"
    ]


def test_standard_webhooks_headers_carry_event_id_timestamp_and_v1_signature() -> None:
    headers = headers_for([API_KEY], ts=1661607353)
    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-timestamp"] == "1661607353"
    assert headers["webhook-signature"] == REFERENCE_STANDARD_SIGNATURE
    assert headers["webhook-signature"] == expected_standard(
        "evt_1", 1661607353, REFERENCE_BODY, API_KEY
    )


def test_metadata_content_type_and_user_agent_headers() -> None:
    headers = headers_for([API_KEY])
    assert headers["X-Hotspotsystem-Event"] == "customer.create"
    assert headers["X-Hotspotsystem-Location"] == "loc-42"
    assert headers["X-Hotspotsystem-Delivery"] == "dlv_9"
    assert headers["X-Hotspotsystem-Attempt"] == "3"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == f"hotspot-webhooks/{__version__}"


def test_all_header_values_are_strings() -> None:
    assert all(isinstance(v, str) for v in headers_for([API_KEY]).values())


def test_several_keys_give_several_space_separated_v1_signatures_current_first() -> None:
    keys = [API_KEY, "previous-key-0123456789", "older-key-abcdefghij"]
    headers = headers_for(keys, ts=1700000000)
    assert headers["webhook-signature"].split(" ") == [
        expected_standard("evt_1", 1700000000, REFERENCE_BODY, k) for k in keys
    ]


def test_original_signature_uses_the_current_key_during_rotation() -> None:
    headers = headers_for([API_KEY, "previous-key-0123456789"])
    assert headers["X-Hotspotsystem-Hmac-Sha256"] == REFERENCE_SIGNATURE


# --- signing secret and the official Standard Webhooks library -----------------------------


def test_signing_secret_is_whsec_and_base64_of_api_key_bytes() -> None:
    assert signing_secret(API_KEY) == "whsec_" + base64.b64encode(API_KEY.encode()).decode()
    assert base64.b64decode(signing_secret("abc").removeprefix("whsec_")) == b"abc"


def test_official_standard_webhooks_library_verifies_our_headers() -> None:
    headers = headers_for([API_KEY], ts=int(time.time()))
    verified = Webhook(signing_secret(API_KEY)).verify(REFERENCE_BODY, headers)
    assert verified == json.loads(REFERENCE_BODY)


def test_official_library_verifies_any_of_the_rotation_keys() -> None:
    old = "previous-key-0123456789"
    headers = headers_for([API_KEY, old], ts=int(time.time()))
    assert Webhook(signing_secret(old)).verify(REFERENCE_BODY, headers) is not None


def test_official_library_rejects_our_headers_under_another_secret() -> None:
    headers = headers_for([API_KEY], ts=int(time.time()))
    with pytest.raises(WebhookVerificationError):
        Webhook(signing_secret("some-other-key-xyz")).verify(REFERENCE_BODY, headers)


# --- receiver.verify_signature -------------------------------------------------------------


def test_verify_signature_accepts_the_right_signature() -> None:
    assert verify_signature(REFERENCE_BODY, REFERENCE_SIGNATURE, API_KEY) is True


def test_verify_signature_tolerates_surrounding_whitespace() -> None:
    assert verify_signature(REFERENCE_BODY, f" {REFERENCE_SIGNATURE}\n", API_KEY) is True


def test_verify_signature_rejects_wrong_key() -> None:
    assert verify_signature(REFERENCE_BODY, REFERENCE_SIGNATURE, API_KEY + "x") is False


def test_verify_signature_rejects_altered_body() -> None:
    altered = REFERENCE_BODY.replace(b'"AR"', b'"US"')
    assert verify_signature(altered, REFERENCE_SIGNATURE, API_KEY) is False


@pytest.mark.parametrize(
    "signature", ["", "garbage", "not base64!!", "v1," + REFERENCE_SIGNATURE, "Zm9v", "é"]
)
def test_verify_signature_rejects_garbage(signature: str) -> None:
    assert verify_signature(REFERENCE_BODY, signature, API_KEY) is False


# --- receiver.parse ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "X-Hotspotsystem-Hmac-Sha256",
        "x-hotspotsystem-hmac-sha256",
        "X-HOTSPOTSYSTEM-HMAC-SHA256",
        "HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256",
    ],
)
def test_parse_accepts_original_header_in_any_case(name: str) -> None:
    event = parse({name: REFERENCE_SIGNATURE}, REFERENCE_BODY, API_KEY)
    assert event.data == json.loads(REFERENCE_BODY)


def test_parse_returns_metadata_from_headers() -> None:
    event = parse(headers_for([API_KEY], ts=int(time.time())), REFERENCE_BODY, API_KEY)
    assert event.id == "evt_1"
    assert event.type == "customer.create"
    assert event.location_id == "loc-42"
    assert event.delivery_id == "dlv_9"
    assert event.attempt == 3
    assert event.data["UserName"] == "BE-72-B3-40-F9-BE"


def test_parse_rejects_bad_original_signature() -> None:
    with pytest.raises(InvalidSignature):
        parse({"X-Hotspotsystem-Hmac-Sha256": "garbage"}, REFERENCE_BODY, API_KEY)


def test_parse_rejects_altered_body_with_all_headers() -> None:
    headers = headers_for([API_KEY], ts=int(time.time()))
    with pytest.raises(InvalidSignature):
        parse(headers, REFERENCE_BODY.replace(b"+54", b"+55"), API_KEY)


def test_parse_rejects_wrong_api_key() -> None:
    headers = headers_for([API_KEY], ts=int(time.time()))
    with pytest.raises(InvalidSignature):
        parse(headers, REFERENCE_BODY, "not-the-api-key")


def test_parse_rejects_request_without_any_signature() -> None:
    with pytest.raises(InvalidSignature):
        parse({"Content-Type": "application/json"}, REFERENCE_BODY, API_KEY)


def standard_only(ts: int, key: str = API_KEY) -> dict[str, str]:
    return {
        "Webhook-Id": "evt_1",
        "Webhook-Timestamp": str(ts),
        "Webhook-Signature": expected_standard("evt_1", ts, REFERENCE_BODY, key),
    }


def test_parse_falls_back_to_standard_webhooks_headers() -> None:
    event = parse(standard_only(int(time.time())), REFERENCE_BODY, API_KEY)
    assert event.id == "evt_1"
    assert event.data["id"] == "59243583"


def test_parse_accepts_standard_signature_when_one_of_several_matches() -> None:
    ts = int(time.time())
    headers = standard_only(ts)
    headers["Webhook-Signature"] = (
        expected_standard("evt_1", ts, REFERENCE_BODY, "old-key-000000000000")
        + " "
        + headers["Webhook-Signature"]
    )
    assert parse(headers, REFERENCE_BODY, API_KEY).id == "evt_1"


def test_parse_rejects_standard_signature_under_another_key() -> None:
    with pytest.raises(InvalidSignature):
        parse(standard_only(int(time.time()), key="other-key"), REFERENCE_BODY, API_KEY)


def test_parse_rejects_stale_standard_timestamp_beyond_tolerance() -> None:
    stale = int(time.time()) - 301
    with pytest.raises(InvalidSignature):
        parse(standard_only(stale), REFERENCE_BODY, API_KEY)


def test_parse_rejects_future_standard_timestamp_beyond_tolerance() -> None:
    future = int(time.time()) + 301
    with pytest.raises(InvalidSignature):
        parse(standard_only(future), REFERENCE_BODY, API_KEY)


def test_parse_tolerance_is_configurable() -> None:
    old = int(time.time()) - 3600
    assert parse(standard_only(old), REFERENCE_BODY, API_KEY, tolerance=7200).id == "evt_1"
    with pytest.raises(InvalidSignature):
        parse(standard_only(old), REFERENCE_BODY, API_KEY, tolerance=60)


def test_parse_rejects_non_numeric_standard_timestamp() -> None:
    headers = standard_only(int(time.time()))
    headers["Webhook-Timestamp"] = "yesterday"
    with pytest.raises(InvalidSignature):
        parse(headers, REFERENCE_BODY, API_KEY)


def test_parse_rejects_correctly_signed_body_that_is_not_json() -> None:
    body = b"not json"
    with pytest.raises(InvalidSignature, match="not JSON"):
        parse({"X-Hotspotsystem-Hmac-Sha256": compute_signature(body, API_KEY)}, body, API_KEY)


# --- receiver.py is standard library only --------------------------------------------------


def test_receiver_imports_without_any_server_side_dependency() -> None:
    code = (
        "import sys\n"
        "import hotspot_webhooks.receiver\n"
        "heavy = {'sqlalchemy', 'aiohttp', 'pydantic', 'pydantic_settings', 'fastapi',\n"
        "         'typer', 'cryptography', 'alembic', 'uvicorn', 'rich'}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --- parse on a whole delivery: Standard Webhooks first, the original header without it -------


def test_parse_refuses_a_whole_delivery_replayed_after_the_tolerance_saying_why() -> None:
    replayed = headers_for([API_KEY], ts=int(time.time()) - 600)  # the original header matches

    with pytest.raises(InvalidSignature, match=r"webhook-timestamp is 6\d\d s old"):
        parse(replayed, REFERENCE_BODY, API_KEY)


def test_parse_verifies_a_receiver_still_holding_the_previous_key_during_a_rotation() -> None:
    rotating = headers_for(["the-new-key-000000000000", API_KEY], ts=int(time.time()))

    assert parse(rotating, REFERENCE_BODY, API_KEY).id == "evt_1"  # the previous key
    assert parse(rotating, REFERENCE_BODY, "the-new-key-000000000000").id == "evt_1"
    with pytest.raises(InvalidSignature, match="does not match this API key"):
        parse(rotating, REFERENCE_BODY, "a-key-of-another-webhook")


def test_parse_without_standard_headers_checks_the_original_one_and_says_what_is_missing() -> None:
    assert parse({"X-Hotspotsystem-Hmac-Sha256": REFERENCE_SIGNATURE}, REFERENCE_BODY, API_KEY)
    with pytest.raises(InvalidSignature, match="neither X-Hotspotsystem-Hmac-Sha256 nor"):
        parse({}, REFERENCE_BODY, API_KEY)
