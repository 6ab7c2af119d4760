"""A failed request told plainly, for people who run a check by hand.

An ``AttemptResult.error`` names what failed; for someone whose receiver is not answering,
``plainly`` adds what it means (``connection refused: nothing listens there``) to the Sender's
wording of a failed connection (``cannot connect to host:port: reason``); any other text is
kept.
"""

from __future__ import annotations

import re

_CANNOT_CONNECT = re.compile(r"^cannot connect to (?P<where>\S+): (?P<why>.*)$", re.DOTALL)
# what the operating system's words mean to someone whose receiver is not answering
_CAUSES = (
    (("connection refused",), "connection refused: nothing listens there"),
    (
        (
            "cannot resolve host name",
            "name or service not known",
            "nodename nor servname",
            "no address associated",
        ),
        "the host name does not resolve (check its spelling and DNS)",
    ),
    (("temporary failure in name resolution",), "the host name could not be resolved now (DNS)"),
    (("network is unreachable", "no route to host"), "no route to that address from here"),
)


def plainly(error: str, timeout: float) -> str:
    """``error`` (an ``AttemptResult.error``) as a sentence a receiver's author acts on."""
    if error.startswith("timed out after"):
        return f"no answer within {timeout:g} s (the delivery timeout)"
    found = _CANNOT_CONNECT.match(error)
    if found is None:
        return error
    where, why = found["where"], found["why"]
    if why.startswith("refused to connect"):  # the SSRF guard's own words (targets.py)
        return why
    lowered = why.lower()
    for needles, cause in _CAUSES:
        if any(needle in lowered for needle in needles):
            return f"cannot connect to {where}: {cause}"
    return f"cannot connect to {where}: {why}"
