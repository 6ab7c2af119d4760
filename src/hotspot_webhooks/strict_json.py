"""What JSON may carry here: RFC 8259 text in UTF-8, and in a payload no NUL. Pure: no I/O.

Python's ``json`` reads and writes more than RFC 8259 allows. ``NaN``, ``Infinity`` and
``-Infinity`` are not JSON (and ``1e999`` is read as infinity): a receiver's parser refuses
them. A lone UTF-16 surrogate (``"\\ud800"``) may be written in JSON text, but has no UTF-8
form, so a body holding one cannot be sent at all. A NUL (``\\u0000``) is JSON, but receivers
(PHP, C, a CRM's PostgreSQL) cut text at it or refuse it, so no payload holds one, in a key
or a value.

``problems`` finds each of these in a value (a request body, an event's payload, a registered
type's schema or sample) and names where it is as a caller writes it
(``data.items[2].price``); ``check`` refuses them (422).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidInput, field_error

MAX_PROBLEMS = 10  # named at once; one is enough to refuse

_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_JSON_NUMBER = "is not a finite number (NaN, Infinity, or beyond ±1.8e308): JSON has none"


def text_problem(text: str, *, nul: bool = True) -> str | None:
    """What is wrong with ``text`` as JSON text (and with ``nul``, as payload text)."""
    if nul and "\x00" in text:
        return "contains a NUL character (\\u0000)"
    if not text.isascii():
        surrogate = _SURROGATE.search(text)
        if surrogate is not None:
            code = f"\\u{ord(surrogate.group()):04x}"
            return f"contains an unpaired UTF-16 surrogate ({code}), which UTF-8 cannot carry"
    return None


def shown(text: str) -> str:
    """``text`` safe to show in a message (and to encode): NUL and lone surrogates escaped."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def problems(
    value: object, field: str = "", *, nul: bool = True, limit: int = MAX_PROBLEMS
) -> list[dict[str, Any]]:
    """Each place in ``value`` that JSON cannot carry (with ``nul``, nor a payload), in the
    document's order, at most ``limit``: ``field_error`` entries naming it under ``field``
    (``""``: the value is a whole body, and names start at its keys)."""
    found: list[dict[str, Any]] = []
    stack: list[tuple[object, str]] = [(value, field)]
    while stack and len(found) < limit:
        item, where = stack.pop()
        if isinstance(item, Mapping):
            # on the way down only what needs a closer look is kept, and named
            closer: list[tuple[object, str]] = []
            for key, child in item.items():
                if isinstance(key, str) and not _plain(key, nul):
                    closer.append((_Key(key), _path(where, key)))
                if not _plain(child, nul):
                    closer.append((child, _path(where, key)))
            stack.extend(reversed(closer))
        elif isinstance(item, list | tuple):
            stack.extend(
                reversed([(c, f"{where}[{i}]") for i, c in enumerate(item) if not _plain(c, nul)])
            )
        else:
            wrong = _problem(item, nul)
            if wrong is not None:
                found.append(field_error(where or "body", wrong))
    return found


class _Key:
    """A key that needs a closer look (its value's place names it)."""

    def __init__(self, key: str) -> None:
        self.key = key


def _plain(value: object, nul: bool) -> bool:
    """Whether ``value`` is a scalar JSON carries as it is (the fast, common case)."""
    kind = type(value)
    if kind is str:
        text: str = value  # type: ignore[assignment]
        return not (nul and "\x00" in text) and (text.isascii() or not _SURROGATE.search(text))
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    return kind is int or kind is bool or value is None


def _problem(value: object, nul: bool) -> str | None:
    """What is wrong with a value that is not a container (None: nothing)."""
    if isinstance(value, _Key):
        wrong = text_problem(value.key, nul=nul)
        return None if wrong is None else f"its name {wrong}"
    if isinstance(value, str):
        return text_problem(value, nul=nul)
    if isinstance(value, float):
        return None if math.isfinite(value) else _NOT_JSON_NUMBER
    if isinstance(value, int) or value is None:
        return None
    return f"is not a JSON value ({type(value).__name__})"


def _path(where: str, key: object) -> str:
    name = shown(str(key))
    return f"{where}.{name}" if where else name


def check(value: object, field: str = "", *, nul: bool = True, what: str = "invalid JSON") -> None:
    """Refuse ``value`` (``InvalidInput``, 422) if ``problems`` finds any, naming each:
    ``what`` heads the message."""
    found = problems(value, field, nul=nul)
    if found:
        listed = "; ".join(f"{p['field']}: {p['message']}" for p in found)
        raise InvalidInput(f"{what}: {listed}", details=found)
