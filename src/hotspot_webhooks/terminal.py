"""Text for a terminal: every value shown as the characters it holds, never obeyed.

A name, a URL, an error message, a header or a server's answer may hold Rich markup
(``[/x]`` crashes a print, ``[link=…]`` hides a hyperlink) or terminal control sequences
(``ESC [2J`` clears the screen, ``ESC ]8;;…`` makes a hidden link, BEL rings). So no value is
ever parsed as markup: the command line and ``listen`` print ``rich.text.Text`` built here,
each value's control characters written out as escapes (``\\x1b``), and JSON with every
control character escaped (``\\u009b``), still valid and with the values intact.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.console import Console, RenderableType
from rich.text import Text

# C0 (ESC, BEL, CR, newline, tab ...), DEL and C1 (CSI, OSC ... as single characters), and the
# line separators and bidirectional overrides that move or reorder what follows them
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# the ones JSON leaves as they are (it escapes C0 itself)
_JSON_CONTROL = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

Part = str | tuple[object, str] | Text | object


def plain(value: object) -> str:
    """``value`` as text to show: each control character written out as an escape
    (``\\x1b``, ``\\n``, ``\\u202e``), so that nothing in it moves the cursor or styles the
    terminal. (Markup is no matter here: print it as ``Text``, which is never parsed.)"""
    return _CONTROL.sub(_escape, str(value))


def _escape(found: re.Match[str]) -> str:
    escaped = repr(found.group())[1:-1]
    return escaped if escaped.startswith("\\") else f"\\u{ord(found.group()):04x}"


def line(*parts: Part) -> Text:
    """One line to print, from parts: a value (shown as ``plain`` text), ``(value, style)``
    for a styled one (``("error:", "red")``), or ``Text`` already made safe here. Nothing is
    parsed as markup, so a value cannot style, hide or break the line."""
    text = Text()
    for part in parts:
        if isinstance(part, Text):
            text.append_text(part)
        elif isinstance(part, tuple):
            value, style = part
            text.append(plain(value), style=style)
        else:
            text.append(plain(part))
    return text


def json_text(data: Any, indent: int | None = 2) -> str:
    """``data`` as JSON (``ensure_ascii=False``) with every control character escaped: JSON
    escapes C0 itself, not DEL, C1 and the bidirectional ones, which a terminal may obey."""
    dumped = json.dumps(data, indent=indent, ensure_ascii=False)
    return _JSON_CONTROL.sub(lambda found: f"\\u{ord(found.group()):04x}", dumped)


class PlainConsole(Console):
    """A console that parses no markup and no emoji codes, and prints a string given to
    ``print`` as ``plain`` text: a value printed by mistake as a string is still shown as
    the characters it holds. Styled lines are ``Text`` (``line``)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(markup=False, emoji=False, **options)

    def print(self, *objects: Any, **options: Any) -> None:
        safe: list[RenderableType] = [
            line(item) if isinstance(item, str) else item for item in objects
        ]
        super().print(*safe, **options)
