"""API keys, operator tokens and the encryption of keys at rest.

API keys are random and must be shown to the operator once and used for signing afterwards, so
they are stored encrypted (Fernet, under ``SECRET_KEY``). Tokens only need to be checked, so
they are stored as SHA-256 hashes; they are random enough that a slow hash adds nothing.
Several comma-separated secret keys may be configured: the first encrypts, all decrypt, which is
how the secret key is rotated.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigurationError

API_KEY_BYTES = 32
TOKEN_PREFIX = "hwt_"


def new_api_key() -> str:
    """32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(API_KEY_BYTES)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(API_KEY_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, token_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), token_hash)


def _fernet(secret: str) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"hotspot-webhooks api keys"
    ).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


class KeyCipher:
    """Encrypts API keys for storage and decrypts them for signing."""

    def __init__(self, secret_keys: list[str]) -> None:
        if not secret_keys or any(len(k) < 16 for k in secret_keys):
            raise ConfigurationError(
                "HOTSPOT_WEBHOOKS_SECRET_KEY must be at least 16 characters "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        self._fernet = MultiFernet([_fernet(k) for k in secret_keys])

    def encrypt(self, api_key: str) -> str:
        return self._fernet.encrypt(api_key.encode()).decode()

    def decrypt(self, stored: str) -> str:
        try:
            return self._fernet.decrypt(stored.encode()).decode()
        except InvalidToken:
            raise ConfigurationError(
                "a stored secret (an API key, or a webhook's headers and auth) cannot be "
                "decrypted: HOTSPOT_WEBHOOKS_SECRET_KEY is not the key it was encrypted with "
                "(list the old key after the new one, comma-separated)"
            ) from None


def load_secret_keys(configured: str | None, key_file: Path | None) -> list[str]:
    """The configured secret keys, or, for an embedded SQLite database, a key file beside it.

    The key file is created (mode 0600) on first use so that a single machine works with no
    set-up; a shared database (PostgreSQL) needs the same key on every host, so it must be set.
    """
    if configured:
        return [k.strip() for k in configured.split(",") if k.strip()]
    if key_file is None:
        raise ConfigurationError(
            "HOTSPOT_WEBHOOKS_SECRET_KEY is required with a shared database: every API and "
            "worker process must use the same key to encrypt and decrypt API keys"
        )
    if not key_file.exists():
        _create_key_file(key_file)
    elif key_file.stat().st_mode & 0o077:  # made by hand, or by an older version
        key_file.chmod(0o600)
    key = key_file.read_text().strip()
    if not key:
        raise ConfigurationError(
            f"the secret key file {key_file} is empty; delete it or set HOTSPOT_WEBHOOKS_SECRET_KEY"
        )
    return [key]


def _create_key_file(key_file: Path) -> None:
    """Write the key to a private temporary file, then link it into place: another process
    sees either no file or the whole key, never a half-written one."""
    temporary = _private_temporary(key_file, secrets.token_urlsafe(32) + "\n")
    try:
        with contextlib.suppress(FileExistsError):  # another process won: use its key
            os.link(temporary, key_file)
    finally:
        temporary.unlink(missing_ok=True)


def write_private_file(path: Path, text: str) -> None:
    """Write a secret (the first admin token, say) to ``path``, readable by this user alone
    (0600); a file already there is replaced whole."""
    temporary = _private_temporary(path, text)
    try:
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _private_temporary(beside: Path, text: str) -> Path:
    """A new file holding ``text``, mode 0600, in ``beside``'s directory, on disk."""
    temporary = beside.with_name(f".{beside.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary
