"""docs/wire.md is the project's own wire contract and catalog: it must say what the code does.

Pure reads of the page and of ``signing.py`` / ``catalog.py``: every header an attempt carries is
documented, in its exact case, and each type's fields, order and sample are the catalog's.
"""

from __future__ import annotations

import re
from pathlib import Path

from hotspot_webhooks import catalog
from hotspot_webhooks.signing import DeliveryRequest, Signer, delivery_headers

PAGE = (Path(__file__).resolve().parent.parent / "docs" / "wire.md").read_text()


def test_every_header_of_an_attempt_is_documented_in_its_exact_case() -> None:
    request = DeliveryRequest("evt_1", "customer.create", "1", "dlv_1", 1)
    headers = delivery_headers(request, b"{}", [Signer("key")], 1_700_000_000)
    documented = set(re.findall(r"^\| `([^`]+)` \|", PAGE, re.MULTILINE))

    assert set(headers) <= documented, set(headers) - documented


def test_every_type_is_documented_with_its_fields_in_wire_order_and_its_sample() -> None:
    for name, event_type in catalog.EVENT_TYPES.items():
        row = re.search(rf"^\| `{re.escape(name)}` \| [^|]+ \| (.+) \|$", PAGE, re.MULTILINE)
        assert row is not None, name
        assert re.findall(r"`([^`]+)`", row[1]) == list(event_type.fields), name
        assert catalog.serialize(event_type.sample).decode() in PAGE, name
