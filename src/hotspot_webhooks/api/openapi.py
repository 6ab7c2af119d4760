"""The OpenAPI document as this process knows the event types: the registered ones are
listed wherever a type may be named, with their samples as examples, and where none are
registered the request shape for them is left out. So the document never accepts less,
nor promises more, than the API does (a fuzzer holds it to that).

FastAPI builds the document once, from the request models; the registered types change at
run time, so each request for it patches a copy of that document (``published``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from .. import catalog
from ..subscription import ANY

BUILT_IN = list(catalog.EVENT_TYPES)
REGISTERED_MODEL = "RegisteredEvent"
_REF = f"#/components/schemas/{REGISTERED_MODEL}"


def published(
    built: Mapping[str, Any], registered: Sequence[str], samples: Mapping[str, Any]
) -> dict[str, Any]:
    """``built`` (FastAPI's document) with ``registered`` event types (name → sample in
    ``samples``) wherever the built-in ones are listed."""
    document = copy.deepcopy(dict(built))
    names = [*BUILT_IN, *registered]
    _widen_enums(document, names)
    schemas = document.get("components", {}).get("schemas", {})
    if registered:
        model = schemas.get(REGISTERED_MODEL, {})
        model.get("properties", {}).get("type", {})["enum"] = list(registered)
        examples = _emit_examples(document)
        for name in registered:
            examples[name] = {
                "summary": f"{name} (registered)",
                "value": {"type": name, "location_id": "loc-1042", "data": samples[name]},
            }
    else:
        _drop_refs(document, _REF)
        schemas.pop(REGISTERED_MODEL, None)
    return document


def _widen_enums(node: Any, names: list[str]) -> None:
    """Every enum of the built-in names (with or without "*") becomes one of ``names``."""
    if isinstance(node, dict):
        enum = node.get("enum")
        if enum == BUILT_IN:
            node["enum"] = list(names)
        elif enum == [*BUILT_IN, ANY]:
            node["enum"] = [*names, ANY]
        for key, value in node.items():
            if key != "not":  # "not one of the built-ins" stays as it is
                _widen_enums(value, names)
    elif isinstance(node, list):
        for item in node:
            _widen_enums(item, names)


def _drop_refs(node: Any, ref: str) -> None:
    """Take ``ref`` out of every ``oneOf``/``anyOf`` that lists it."""
    if isinstance(node, dict):
        for key in ("oneOf", "anyOf"):
            choices = node.get(key)
            if isinstance(choices, list):
                node[key] = [
                    c for c in choices if not (isinstance(c, dict) and c.get("$ref") == ref)
                ]
        for value in node.values():
            _drop_refs(value, ref)
    elif isinstance(node, list):
        for item in node:
            _drop_refs(item, ref)


def _emit_examples(document: dict[str, Any]) -> dict[str, Any]:
    content = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    examples: dict[str, Any] = content["application/json"].setdefault("examples", {})
    return examples
