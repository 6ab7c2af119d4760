"""API keys, tokens and encryption at rest (SPEC §6)."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from hotspot_webhooks.errors import ConfigurationError
from hotspot_webhooks.keys import (
    KeyCipher,
    hash_token,
    load_secret_keys,
    new_api_key,
    new_token,
    token_matches,
)

SECRET = "correct-horse-battery-staple-01"
OTHER_SECRET = "another-secret-key-of-some-length"
URL_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


# --- KeyCipher -----------------------------------------------------------------------------


def test_cipher_round_trips_an_api_key() -> None:
    cipher = KeyCipher([SECRET])
    api_key = new_api_key()
    assert cipher.decrypt(cipher.encrypt(api_key)) == api_key


def test_cipher_round_trips_non_ascii() -> None:
    cipher = KeyCipher([SECRET])
    assert cipher.decrypt(cipher.encrypt("clé-Café")) == "clé-Café"


def test_ciphertext_differs_from_and_does_not_contain_the_plaintext() -> None:
    cipher = KeyCipher([SECRET])
    api_key = new_api_key()
    stored = cipher.encrypt(api_key)
    assert stored != api_key
    assert api_key not in stored
    assert SECRET not in stored


def test_encrypting_twice_gives_different_ciphertexts() -> None:
    cipher = KeyCipher([SECRET])
    assert cipher.encrypt("same-key") != cipher.encrypt("same-key")


def test_cipher_with_another_secret_cannot_decrypt() -> None:
    stored = KeyCipher([SECRET]).encrypt("the-api-key")
    with pytest.raises(ConfigurationError) as info:
        KeyCipher([OTHER_SECRET]).decrypt(stored)
    assert "SECRET_KEY" in info.value.message


def test_garbage_ciphertext_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        KeyCipher([SECRET]).decrypt("not-a-fernet-token")


def test_rotation_new_key_first_decrypts_what_the_old_key_encrypted() -> None:
    old_stored = KeyCipher([OTHER_SECRET]).encrypt("api-key-1")
    rotated = KeyCipher([SECRET, OTHER_SECRET])
    assert rotated.decrypt(old_stored) == "api-key-1"


def test_rotation_encrypts_with_the_first_key() -> None:
    stored = KeyCipher([SECRET, OTHER_SECRET]).encrypt("api-key-2")
    assert KeyCipher([SECRET]).decrypt(stored) == "api-key-2"
    with pytest.raises(ConfigurationError):
        KeyCipher([OTHER_SECRET]).decrypt(stored)


@pytest.mark.parametrize("keys", [["short"], ["x" * 15], [SECRET, "tooshort"], []])
def test_short_or_missing_secret_key_is_rejected(keys: list[str]) -> None:
    with pytest.raises(ConfigurationError) as info:
        KeyCipher(keys)
    assert "SECRET_KEY" in info.value.message
    assert "16" in info.value.message


def test_sixteen_character_secret_key_is_enough() -> None:
    cipher = KeyCipher(["x" * 16])
    assert cipher.decrypt(cipher.encrypt("k")) == "k"


# --- API keys and tokens -------------------------------------------------------------------


def test_new_api_key_is_at_least_43_url_safe_characters() -> None:
    api_key = new_api_key()
    assert len(api_key) >= 43
    assert set(api_key) <= URL_SAFE


def test_new_api_keys_are_unique() -> None:
    keys = {new_api_key() for _ in range(500)}
    assert len(keys) == 500


def test_new_token_is_prefixed_url_safe_and_unique() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert token.startswith("hwt_")
        assert len(token) >= 4 + 43
        assert set(token.removeprefix("hwt_")) <= URL_SAFE


def test_hash_token_is_sha256_hex_and_not_the_token() -> None:
    token = new_token()
    hashed = hash_token(token)
    assert hashed == hashlib.sha256(token.encode()).hexdigest()
    assert token not in hashed


def test_token_matches_its_hash_only() -> None:
    token = new_token()
    hashed = hash_token(token)
    assert token_matches(token, hashed)
    assert not token_matches(token + "x", hashed)
    assert not token_matches(new_token(), hashed)
    assert not token_matches(token, "")


# --- load_secret_keys ----------------------------------------------------------------------


def test_configured_keys_are_split_on_commas_and_trimmed(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    assert load_secret_keys(f" {SECRET} , {OTHER_SECRET},", key_file) == [SECRET, OTHER_SECRET]
    assert not key_file.exists()


def test_key_file_is_created_with_mode_0600_on_first_use(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    [key] = load_secret_keys(None, key_file)
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key) >= 16
    assert key_file.read_text().strip() == key


def test_key_file_key_is_the_same_on_later_calls(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    first = load_secret_keys(None, key_file)
    assert load_secret_keys("", key_file) == first
    assert load_secret_keys(None, key_file) == first


def test_key_from_key_file_works_with_the_cipher(tmp_path: Path) -> None:
    keys = load_secret_keys(None, tmp_path / "secret.key")
    stored = KeyCipher(keys).encrypt("api-key")
    assert KeyCipher(load_secret_keys(None, tmp_path / "secret.key")).decrypt(stored) == "api-key"


def test_existing_key_file_is_read_not_replaced(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    key_file.write_text(SECRET + "\n")
    assert load_secret_keys(None, key_file) == [SECRET]
    assert key_file.read_text() == SECRET + "\n"


def test_a_secret_key_must_be_configured_without_a_key_file() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_secret_keys(None, None)
    assert "HOTSPOT_WEBHOOKS_SECRET_KEY" in info.value.message


def test_configured_key_is_enough_without_a_key_file() -> None:
    assert load_secret_keys(SECRET, None) == [SECRET]
