"""Identifiers: a type prefix and a ULID (time-ordered, so ids sort by creation).

Monotonic within a process: ids made in the same millisecond count up from that millisecond's
random start, so a list sorted by id is in creation order, not just in millisecond order.
"""

from __future__ import annotations

import base64
import os
import threading
import time

# base32's alphabet → Crockford's, which ULIDs use (no I, L, O, U)
_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_MASK = (1 << 80) - 1
_lock = threading.Lock()
_last_ms = -1
_last_random = 0
_time_part = ""


def new_id(prefix: str) -> str:
    """``prefix_`` + 26 characters: 48 bits of milliseconds, then 80 random bits."""
    global _last_ms, _last_random, _time_part
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _last_random = int.from_bytes(os.urandom(10))
            _time_part = _encode_time(ms)
        else:  # same millisecond (or the clock stepped back): count up
            _last_random = (_last_random + 1) & _RANDOM_MASK
        random_part = base64.b32encode(_last_random.to_bytes(10)).translate(_TO_CROCKFORD)
        return f"{prefix}_{_time_part}{random_part.decode()}"


def _encode_time(ms: int) -> str:
    """48 bits of milliseconds as ULID's first 10 characters."""
    chars = []
    for _ in range(10):
        ms, digit = divmod(ms, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))
