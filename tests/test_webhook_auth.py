"""A webhook's own headers and auth (SPEC §9): what is refused, what is shown, what is stored,
and what an update keeps. Pure: no socket (``test_oauth2.py`` has the token endpoint)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from hotspot_webhooks.errors import InvalidInput
from hotspot_webhooks.integrations.auth import (
    MAX_HEADERS,
    BasicAuth,
    BearerAuth,
    OAuth2Auth,
    check_auth,
    check_headers,
    check_together,
    request_headers,
    seal,
    shown_auth,
    shown_headers,
    shown_request_headers,
    unseal,
)
from hotspot_webhooks.keys import KeyCipher

OLD_KEY = "the-old-secret-key-0123456789"
NEW_KEY = "the-new-secret-key-9876543210"
HEADER_SECRET = "hdr-secret-6b1f0c9e"
PASSWORD = "pw-secret-4d2a7e55"
TOKEN = "bearer-secret-91c3f0aa"
CLIENT_SECRET = "client-secret-1e8b7d33"
OAUTH2 = {
    "type": "oauth2",
    "token_url": "https://auth.example.com/oauth/token",
    "client_id": "hotspot-crm",
    "client_secret": CLIENT_SECRET,
    "scope": "contacts.write",
}


def refused(call: Any, *args: Any, **kwargs: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        call(*args, **kwargs)
    assert caught.value.status == 422
    return caught.value


def field_of(error: InvalidInput) -> str:
    [detail] = error.details
    return str(detail["field"])


# --- headers --------------------------------------------------------------------------------


def test_headers_are_kept_as_given() -> None:
    sent = {"X-Api-Key": HEADER_SECRET, "Accept": "application/json", "X-Empty": ""}
    assert check_headers(sent) == sent
    assert check_headers(None) == {}


@pytest.mark.parametrize(
    "name",
    [
        # §2's headers
        "Content-Type",
        "User-Agent",
        "X-Hotspotsystem-Hmac-Sha256",
        "HTTP_X_HOTSPOTSYSTEM_HMAC_SHA256",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Hotspotsystem-Event",
        "X-Hotspotsystem-Location",
        "X-Hotspotsystem-Delivery",
        "X-Hotspotsystem-Attempt",
        # HTTP's own
        "Host",
        "Content-Length",
        "Content-Encoding",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "Expect",
        "TE",
        # any case, and "_" for "-" (PHP reads X_Hotspotsystem_Event as X-Hotspotsystem-Event)
        "content-type",
        "HOST",
        "WEBHOOK-ID",
        "Webhook-Anything",
        "x-hotspotsystem-anything",
        "X_Hotspotsystem_Event",
        "webhook_signature",
        "Http-X-Hotspotsystem-Hmac-Sha256",
        "Content_Type",
    ],
)
def test_each_header_we_set_is_refused_by_name(name: str) -> None:
    error = refused(check_headers, {name: "x"})
    assert field_of(error) == f"headers.{name}"
    assert name in error.message
    assert "set by hotspot-webhooks" in error.message


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("X Api Key", "not a header name"),
        ("X-Api-Key:", "not a header name"),
        ("X-Api\r\nEvil", "not a header name"),
        ("X-Ümlaut", "not a header name"),
        ("X-" + "a" * 100, "longer than"),
        pytest.param("X-" + "a" * 100_000, "longer than", id="a-100000-character-name"),
    ],
)
def test_header_names_must_be_http_tokens(name: str, why: str) -> None:
    error = refused(check_headers, {name: "x"})
    assert why in error.message
    assert field_of(error).startswith("headers.")
    assert len(error.message) < 300
    assert not {"\r", "\n"} & set(error.message)


@pytest.mark.parametrize(
    "value",
    ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b", "a\x7fb", " leading", "trailing\t", "é"],
)
def test_header_values_hold_no_line_breaks_nul_or_control_characters(value: str) -> None:
    error = refused(check_headers, {"X-Api-Key": value})
    assert field_of(error) == "headers.X-Api-Key"
    assert "printable ASCII" in error.message


def test_headers_are_bounded_in_count_and_size() -> None:
    many = {f"X-H{i}": "v" for i in range(MAX_HEADERS + 1)}
    assert f"at most {MAX_HEADERS} headers" in refused(check_headers, many).message
    assert "at most 4096 characters" in refused(check_headers, {"X-Big": "v" * 4097}).message
    big = {f"X-H{i}": "v" * 4000 for i in range(5)}
    assert "in all" in refused(check_headers, big).message
    assert "must be an object" in refused(check_headers, ["X-A", "b"]).message
    assert "must be a string" in refused(check_headers, {"X-A": 1}).message


def test_a_header_given_twice_in_different_case_is_refused() -> None:
    error = refused(check_headers, {"X-Api-Key": "a", "x-api-key": "b"})
    assert "given twice" in error.message


def test_authorization_is_a_header_of_its_own_or_auth_but_not_both() -> None:
    headers = check_headers({"Authorization": "Token abc"})
    check_together(headers, None)
    error = refused(check_together, headers, BearerAuth(token=TOKEN))
    assert field_of(error) == "headers.Authorization"
    assert "remove one" in error.message


def test_every_header_value_is_shown_redacted() -> None:
    shown = shown_headers({"X-Api-Key": HEADER_SECRET, "X-Team": "sales"})
    assert shown == {"X-Api-Key": "[redacted]", "X-Team": "[redacted]"}


def test_an_attempt_record_shows_our_headers_and_redacts_the_webhooks_own() -> None:
    headers = {"X-Api-Key": HEADER_SECRET}
    auth = BearerAuth(TOKEN)
    sent = {
        "Content-Type": "application/json",
        "X-Hotspotsystem-Hmac-Sha256": "c2lnbmF0dXJl",
        "x-api-key": HEADER_SECRET,
        **request_headers(auth),
    }
    assert shown_request_headers(sent, headers, auth) == {
        "Content-Type": "application/json",
        "X-Hotspotsystem-Hmac-Sha256": "c2lnbmF0dXJl",
        "x-api-key": "[redacted]",
        "Authorization": "[redacted]",
    }
    assert (
        shown_request_headers({"Authorization": "Token t"}, {"Authorization": "Token t"}, None)[
            "Authorization"
        ]
        == "[redacted]"
    )


# --- auth -----------------------------------------------------------------------------------


def test_each_auth_kind_is_read_with_its_fields() -> None:
    assert check_auth(None) is None
    assert check_auth({"type": "basic", "username": "crm", "password": PASSWORD}) == BasicAuth(
        "crm", PASSWORD
    )
    assert check_auth({"type": "basic", "username": "sk_live_x", "password": ""}) == BasicAuth(
        "sk_live_x", ""
    )
    assert check_auth({"type": "bearer", "token": TOKEN}) == BearerAuth(TOKEN)
    assert check_auth(OAUTH2) == OAuth2Auth(
        token_url="https://auth.example.com/oauth/token",
        client_id="hotspot-crm",
        client_secret=CLIENT_SECRET,
        scope="contacts.write",
        client_auth="client_secret_basic",
    )
    post = check_auth(OAUTH2 | {"scope": None, "client_auth": "client_secret_post"})
    assert isinstance(post, OAuth2Auth)
    assert post.scope is None
    assert post.client_auth == "client_secret_post"


@pytest.mark.parametrize(
    ("sent", "field", "says"),
    [
        ("basic", "auth", "must be null or an object"),
        ({}, "auth.type", "must be basic, bearer or oauth2"),
        ({"type": "digest"}, "auth.type", "not 'digest'"),
        ({"type": ["basic"]}, "auth.type", "not ['basic']"),
        ({"type": "basic", "password": PASSWORD}, "auth.username", "required"),
        ({"type": "basic", "username": "crm"}, "auth.password", "required"),
        ({"type": "basic", "username": "", "password": "x"}, "auth.username", "1 to 256"),
        ({"type": "basic", "username": "a:b", "password": "x"}, "auth.username", "':'"),
        ({"type": "basic", "username": 7, "password": "x"}, "auth.username", "must be a string"),
        ({"type": "basic", "username": "crm", "password": "a\nb"}, "auth.password", "control"),
        ({"type": "basic", "username": "crm", "password": "x" * 4097}, "auth.password", "4096"),
        ({"type": "basic", "username": "u", "password": "p", "token": "t"}, "auth.token", "not a"),
        ({"type": "bearer"}, "auth.token", "required"),
        ({"type": "bearer", "token": ""}, "auth.token", "1 to 4096"),
        ({"type": "bearer", "token": "two words"}, "auth.token", "without spaces"),
        ({"type": "bearer", "token": "a\r\nX-Evil: 1"}, "auth.token", "without spaces"),
        ({"type": "bearer", "token": ["t"]}, "auth.token", "must be a string"),
        (OAUTH2 | {"token_url": None}, "auth.token_url", "required"),
        (OAUTH2 | {"token_url": "ftp://auth.example.com/t"}, "auth.token_url", "http or https"),
        (OAUTH2 | {"token_url": "https://u:p@auth.example.com/t"}, "auth.token_url", "credent"),
        (OAUTH2 | {"token_url": "https://auth.example.com/t#x"}, "auth.token_url", "fragment"),
        (OAUTH2 | {"client_id": ""}, "auth.client_id", "1 to 256"),
        (OAUTH2 | {"client_id": None}, "auth.client_id", "required"),
        (OAUTH2 | {"client_secret": None}, "auth.client_secret", "required"),
        (OAUTH2 | {"client_secret": ""}, "auth.client_secret", "1 to 4096"),
        (OAUTH2 | {"client_secret": 12345}, "auth.client_secret", "must be a string"),
        (OAUTH2 | {"scope": "a  b"}, "auth.scope", "single spaces"),
        (OAUTH2 | {"scope": 'say "hi"'}, "auth.scope", "RFC 6749"),
        (OAUTH2 | {"scope": ["a"]}, "auth.scope", "must be a string"),
        (OAUTH2 | {"client_auth": "private_key_jwt"}, "auth.client_auth", "client_secret_basic"),
        (OAUTH2 | {"audience": "x"}, "auth.audience", "not a field of oauth2"),
    ],
)
def test_each_auth_kind_refuses_missing_and_wrong_fields_by_name(
    sent: Any, field: str, says: str
) -> None:
    error = refused(check_auth, sent)
    assert field_of(error) == field
    assert field in error.message
    assert says in error.message


def test_no_secret_in_an_auth_errors_message_or_repr() -> None:
    error = refused(check_auth, OAUTH2 | {"client_secret": CLIENT_SECRET + "\n"})
    assert CLIENT_SECRET not in error.message
    assert CLIENT_SECRET not in str(error.details)
    for auth in (BasicAuth("crm", PASSWORD), BearerAuth(TOKEN), check_auth(OAUTH2)):
        assert not {PASSWORD, TOKEN, CLIENT_SECRET} & set(repr(auth).split("'"))


def test_auth_is_shown_as_its_type_and_fields_that_are_not_secret() -> None:
    assert shown_auth(None) is None
    assert shown_auth(BasicAuth("crm", PASSWORD)) == {"type": "basic", "username": "crm"}
    assert shown_auth(BearerAuth(TOKEN)) == {"type": "bearer"}
    assert shown_auth(check_auth(OAUTH2)) == {
        "type": "oauth2",
        "token_url": "https://auth.example.com/oauth/token",
        "client_id": "hotspot-crm",
        "scope": "contacts.write",
        "client_auth": "client_secret_basic",
    }


def test_each_auth_kind_becomes_one_authorization_header() -> None:
    assert request_headers(None) == {}
    basic = request_headers(BasicAuth("crm", "pä:ss"))["Authorization"]
    assert basic.startswith("Basic ")
    assert base64.b64decode(basic.removeprefix("Basic ")).decode() == "crm:pä:ss"
    assert request_headers(BearerAuth(TOKEN)) == {"Authorization": f"Bearer {TOKEN}"}
    oauth2 = check_auth(OAUTH2)
    assert request_headers(oauth2, "at-1") == {"Authorization": "Bearer at-1"}
    with pytest.raises(ValueError, match="access token"):
        request_headers(oauth2)


# --- updates (PATCH) ------------------------------------------------------------------------

STORED_HEADERS = {"X-Api-Key": HEADER_SECRET, "X-Team": "sales"}


def test_an_update_keeps_a_header_value_sent_back_redacted() -> None:
    sent = {"x-api-key": "[redacted]", "X-Team": "marketing", "X-New": "1"}
    assert check_headers(sent, stored=STORED_HEADERS) == {
        "x-api-key": HEADER_SECRET,
        "X-Team": "marketing",
        "X-New": "1",
    }


def test_an_update_drops_the_headers_it_leaves_out() -> None:
    assert check_headers({"X-Team": "[redacted]"}, stored=STORED_HEADERS) == {"X-Team": "sales"}
    assert check_headers({}, stored=STORED_HEADERS) == {}
    assert check_headers(None, stored=STORED_HEADERS) == {}


def test_a_redacted_value_with_nothing_stored_is_refused() -> None:
    error = refused(check_headers, {"X-Other": "[redacted]"}, stored=STORED_HEADERS)
    assert field_of(error) == "headers.X-Other"
    assert "no stored value" in error.message
    assert "no stored value" in refused(check_headers, {"X-Api-Key": "[redacted]"}).message


@pytest.mark.parametrize("secret", [None, "[redacted]"])
def test_an_update_keeps_each_secret_left_out_or_sent_back_redacted(secret: str | None) -> None:
    def sent(fields: dict[str, Any], name: str) -> dict[str, Any]:
        fields = dict(fields)
        if secret is None:
            del fields[name]
        else:
            fields[name] = secret
        return fields

    basic = BasicAuth("crm", PASSWORD)
    fields = {"type": "basic", "username": "crm2", "password": ""}
    updated = check_auth(sent(fields, "password"), stored=basic)
    assert updated == BasicAuth("crm2", PASSWORD)
    bearer = BearerAuth(TOKEN)
    assert check_auth(sent({"type": "bearer", "token": ""}, "token"), stored=bearer) == bearer
    oauth2 = check_auth(OAUTH2)
    updated = check_auth(sent(OAUTH2 | {"scope": "a b"}, "client_secret"), stored=oauth2)
    assert isinstance(updated, OAuth2Auth)
    assert (updated.client_secret, updated.scope) == (CLIENT_SECRET, "a b")


def test_an_oauth2_secret_is_not_kept_for_another_token_url() -> None:
    stored = check_auth(OAUTH2)
    moved = OAUTH2 | {"token_url": "https://elsewhere.example/token", "client_secret": "[redacted]"}
    error = refused(check_auth, moved, stored=stored)
    assert field_of(error) == "auth.client_secret"
    assert "token_url changed" in error.message
    del moved["client_secret"]
    assert field_of(refused(check_auth, moved, stored=stored)) == "auth.client_secret"


def test_a_new_auth_type_needs_its_secrets_given() -> None:
    stored = BasicAuth("crm", PASSWORD)
    error = refused(check_auth, {"type": "bearer", "token": "[redacted]"}, stored=stored)
    assert field_of(error) == "auth.token"
    assert field_of(refused(check_auth, {"type": "bearer"}, stored=stored)) == "auth.token"


def test_a_new_auth_is_not_refused_for_a_redacted_looking_non_secret() -> None:
    """Only secrets stand for stored values: a user name of "[redacted]" is just a name."""
    auth = check_auth({"type": "basic", "username": "[redacted]", "password": PASSWORD})
    assert auth == BasicAuth("[redacted]", PASSWORD)


# --- at rest --------------------------------------------------------------------------------


def test_headers_and_auth_round_trip_through_the_sealed_blob() -> None:
    box = KeyCipher([NEW_KEY])
    for auth in (BasicAuth("crm", PASSWORD), BearerAuth(TOKEN), check_auth(OAUTH2), None):
        sealed = seal(STORED_HEADERS, auth, box)
        assert sealed is not None
        assert unseal(sealed, box) == (STORED_HEADERS, auth)


def test_a_webhook_without_headers_or_auth_stores_nothing() -> None:
    box = KeyCipher([NEW_KEY])
    assert seal({}, None, box) is None
    assert unseal(None, box) == ({}, None)


def test_the_sealed_blob_holds_no_secret_nor_name_in_clear() -> None:
    box = KeyCipher([NEW_KEY])
    for auth in (BasicAuth("crm-user", PASSWORD), BearerAuth(TOKEN), check_auth(OAUTH2)):
        sealed = seal(STORED_HEADERS, auth, box)
        assert sealed is not None
        for secret in (HEADER_SECRET, PASSWORD, TOKEN, CLIENT_SECRET, "crm-user", "X-Api-Key"):
            assert secret not in sealed
            assert secret.encode() not in base64.urlsafe_b64decode(sealed + "==")


def test_a_blob_sealed_under_the_old_key_opens_after_rotation() -> None:
    old = KeyCipher([OLD_KEY])
    rotated = KeyCipher([NEW_KEY, OLD_KEY])  # the first encrypts, all decrypt
    sealed = seal(STORED_HEADERS, check_auth(OAUTH2), old)
    assert unseal(sealed, rotated) == (STORED_HEADERS, check_auth(OAUTH2))
    resealed = seal(*unseal(sealed, rotated), rotated)
    assert unseal(resealed, KeyCipher([NEW_KEY])) == (STORED_HEADERS, check_auth(OAUTH2))
