"""What makes a registered type's JSON Schema safe to run on every emit (issue 25: S2, S3,
S8). Pure: no I/O, ever.

- References (``$ref``, ``$dynamicRef``) resolve inside the schema only: by JSON pointer, by
  anchor, or by an ``$id`` the schema itself declares. Nothing is retrieved: the registry the
  validator gets has no retrieval, and ``refusal`` refuses a schema naming any other document
  (``http:``, ``file:``, ``ftp:``, a relative name), a pointer to nothing, a reference to
  something that is not a valid schema, and a cycle of references that never moves into the
  data (validation would never end).
- ``pattern`` and ``patternProperties`` run on RE2, in time linear in the text: no pattern can
  stall the process. A pattern RE2 cannot compile (backreferences, lookaround) is refused.
  ``uniqueItems`` hashes the items rather than comparing each pair.

``refusal`` walks the schema without recursion, so no nesting depth makes it fail.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import re2  # type: ignore[import-untyped]  # google-re2: ships no types
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import extend
from referencing import Registry
from referencing.exceptions import (
    InvalidAnchor,
    NoSuchAnchor,
    PointerToNowhere,
    Unresolvable,
)
from referencing.jsonschema import DRAFT202012

if TYPE_CHECKING:
    from referencing._core import Resolver  # what resolver_with_root gives; not exported

MAX_DEPTH = 64  # JSON levels: a metaschema check of a schema nested ~200 deep overflows
MAX_REASON = 300
MAX_REF = 100  # of a reference quoted in a reason

# Draft 2020-12's subschemas, by how the validator applies them: to the same value (a cycle
# of these never ends), to a part of it, or not at all ($defs: only through a reference)
SAME_VALUE = ("not", "if", "then", "else")
SAME_VALUE_EACH = ("allOf", "anyOf", "oneOf")
SAME_VALUE_BY_NAME = ("dependentSchemas",)
PART = (
    "additionalProperties",
    "contains",
    "contentSchema",
    "items",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
PART_EACH = ("prefixItems",)
PART_BY_NAME = ("properties", "patternProperties", "$defs", "definitions")
REFERENCES = ("$ref", "$dynamicRef")


@dataclass(frozen=True)
class Refusal:
    """Why a schema cannot be used: ``path`` names the keyword (``schema.properties.a.$ref``)."""

    path: str
    reason: str


class RefusedSchema(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"{refusal.path}: {refusal.reason}")
        self.refusal = refusal


def refusal(schema: Mapping[str, Any], root: str = "schema") -> Refusal | None:
    """Why ``schema`` (a valid Draft 2020-12 schema) cannot be used safely, or None.

    It never raises: a schema stored by an older version without the metaschema's check,
    which ``referencing`` trips over, is refused too (checking it again here would cost a
    large schema half a second each time the types are read)."""
    try:
        _Walk(schema, root).run()
    except RefusedSchema as refused:
        return refused.refusal
    except Exception as exc:  # malformed beyond what the walk guards against
        return Refusal(root, _cut(f"cannot be checked ({type(exc).__name__}: {exc})"))
    return None


def depth_of(document: object) -> int:
    """How deeply ``document``'s objects and arrays nest (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return deepest


def check_schema(schema: Mapping[str, Any]) -> None:
    """``SchemaError`` unless ``schema`` is a valid Draft 2020-12 schema. Its patterns are
    left to ``refusal``, which judges them as RE2 (Python's ``re`` would refuse ``\\p{L}``,
    which RE2 runs, and take ``(a)\\1``, which RE2 refuses)."""
    Draft202012Validator.check_schema(schema, format_checker=_SCHEMA_FORMATS)


def validator_for(schema: Mapping[str, Any]) -> Validator:
    """A validator of ``schema`` (which ``refusal`` passed) that never retrieves a thing and
    matches patterns with RE2."""
    return SafeValidator(dict(schema), registry=Registry())


# RE2: linear-time patterns

_SCHEMA_FORMATS = FormatChecker(formats=())
_SCHEMA_FORMATS.checkers.update(Draft202012Validator.FORMAT_CHECKER.checkers)
_SCHEMA_FORMATS.checks("regex")(lambda pattern: True)  # judged by pattern_problem, as RE2


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the caller's error, not a log line
_OPTIONS.never_capture = True  # only whether it matches counts


@functools.lru_cache(maxsize=1024)
def compiled(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (once per process); ``re2.error`` if RE2 cannot."""
    return re2.compile(pattern, _OPTIONS)


def pattern_problem(pattern: object) -> str | None:
    if not isinstance(pattern, str):
        return "must be a string"
    try:
        compiled(pattern)
    except re2.error as exc:
        said = exc.args[0] if exc.args else ""
        said = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
        return _cut(
            f"RE2 cannot compile {_quoted(pattern)} ({said}); patterns must be RE2 syntax, "
            "which has no backreferences and no lookaround"
        )
    return None


def matches(pattern: str, text: str) -> bool:
    try:
        return compiled(pattern).search(text) is not None
    except UnicodeEncodeError:  # a lone surrogate: not text any pattern can match
        return False


def _pattern(
    validator: Any, pattern: str, instance: object, schema: object
) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not matches(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: object, schema: object
) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if matches(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _unique_items(
    validator: Any, unique: object, instance: object, schema: object
) -> Iterator[ValidationError]:
    """jsonschema's own compares unsortable items (objects) pairwise: 5,000 of them stalled
    the process for a minute. Here each item gets a key equal for equal JSON values."""
    if unique is not True or not isinstance(instance, list):
        return
    seen: set[Hashable] = set()
    for index, item in enumerate(instance):
        key = _json_key(item)
        if key in seen:
            yield ValidationError(f"has non-unique elements: [{index}] repeats an earlier one")
            return
        seen.add(key)


def _json_key(value: object) -> Hashable:
    """Equal for values JSON Schema deems equal (1 and 1.0, objects in any key order; true
    and 1 differ). Numbers become text, whose hash an attacker cannot aim (an int's can)."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int):
        return ("number", str(value))
    if isinstance(value, float):
        return ("number", str(int(value)) if value.is_integer() else repr(value))
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(_json_key(item) for item in value))
    if isinstance(value, dict):
        return ("object", frozenset((name, _json_key(item)) for name, item in value.items()))
    return ("other", repr(value))


# Draft 2020-12 as jsonschema has it, but for these keywords
SafeValidator = cast(
    type[Validator],
    extend(  # type: ignore[no-untyped-call]  # the stubs leave it untyped
        Draft202012Validator,
        {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "uniqueItems": _unique_items,
        },
    ),
)


# references: inside the schema only, to a schema, never round in circles


@dataclass
class _Walk:
    schema: Mapping[str, Any]
    root: str
    paths: dict[int, str] = field(default_factory=dict)  # each subschema walked, by id()
    # what each subschema applies to the same value: (target id, the keyword's path)
    same_value: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    references: list[tuple[int, str, Any, Resolver[Any]]] = field(default_factory=list)
    dynamic_anchors: dict[str, list[int]] = field(default_factory=dict)

    def run(self) -> None:
        if not isinstance(self.schema.get("$id", ""), str):
            raise _refused(f"{self.root}.$id", "must be a string")
        resource = DRAFT202012.create_resource(dict(self.schema))
        located = _locate(resource.contents, self.root)
        self._walk(resource.contents, self.root, Registry().resolver_with_root(resource))
        dynamic: list[tuple[int, str, str]] = []
        while self.references:  # each leads to a subschema, perhaps outside any keyword
            source, where, ref, resolver = self.references.pop()
            target, there = self._resolve(ref, where, resolver)
            self.same_value.setdefault(source, []).append((id(target), where))
            if where.endswith("$dynamicRef") and ref.startswith("#"):
                dynamic.append((source, ref[1:], where))
            if isinstance(target, dict) and id(target) not in self.paths:
                self._walk(target, located.get(id(target), f"{where} target"), there)
        for source, name, where in dynamic:  # it may land on any anchor of its name
            for anchored in self.dynamic_anchors.get(name, []):
                self.same_value[source].append((anchored, where))
        self._refuse_cycles(id(resource.contents))

    def _walk(self, top: dict[str, Any], path: str, resolver: Resolver[Any]) -> None:
        """Check each subschema under ``top`` (by the keywords), noting its references."""
        stack = [(top, path, resolver)]
        while stack:
            node, path, resolver = stack.pop()
            if not isinstance(node, dict) or id(node) in self.paths:
                continue
            self.paths[id(node)] = path
            if not isinstance(node.get("$id", ""), str):
                raise _refused(f"{path}.$id", "must be a string")
            if node is not top and "$id" in node:
                resolver = resolver.in_subresource(DRAFT202012.create_resource(node))
            self._check_patterns(node, path)
            if isinstance(node.get("$dynamicAnchor"), str):
                self.dynamic_anchors.setdefault(node["$dynamicAnchor"], []).append(id(node))
            for keyword in REFERENCES:
                if keyword in node:
                    self.references.append((id(node), f"{path}.{keyword}", node[keyword], resolver))
            edges = self.same_value.setdefault(id(node), [])
            for where, child, same_value in _children(node, path):
                stack.append((child, where, resolver))
                if same_value and isinstance(child, dict):
                    edges.append((id(child), where))

    @staticmethod
    def _check_patterns(node: dict[str, Any], path: str) -> None:
        if "pattern" in node and (problem := pattern_problem(node["pattern"])):
            raise RefusedSchema(Refusal(f"{path}.pattern", problem))
        patterns = node.get("patternProperties")
        if isinstance(patterns, dict):
            for pattern in patterns:
                if problem := pattern_problem(pattern):
                    raise RefusedSchema(Refusal(f"{path}.patternProperties", problem))

    def _resolve(
        self, ref: object, where: str, resolver: Resolver[Any]
    ) -> tuple[Any, Resolver[Any]]:
        """What ``ref`` names inside the schema, and the resolver there; else refused."""
        if not isinstance(ref, str):
            raise RefusedSchema(Refusal(where, "must be a string"))
        try:
            resolved = resolver.lookup(ref)
        except PointerToNowhere:
            raise _refused(where, f"{_quoted(ref)} points at nothing in this schema") from None
        except (NoSuchAnchor, InvalidAnchor):
            raise _refused(
                where, f"{_quoted(ref)}: nothing in this schema has that anchor"
            ) from None
        except Unresolvable:
            raise _refused(
                where,
                f"{_quoted(ref)} names a document outside this schema; only references inside the "
                "schema are allowed (nothing is ever fetched)",
            ) from None
        except ValueError as exc:  # a malformed URI
            raise _refused(where, f"{_quoted(ref)} is not a valid reference: {exc}") from None
        except (AttributeError, TypeError, LookupError) as exc:  # through a malformed schema
            raise _refused(where, f"{_quoted(ref)} cannot be followed: {exc}") from None
        target = resolved.contents
        if not isinstance(target, dict | bool):
            raise _refused(where, f"{_quoted(ref)} points at a value that is not a schema")
        if isinstance(target, dict) and id(target) not in self.paths:
            try:  # outside the keywords, so the metaschema did not check it
                check_schema(target)
            except SchemaError as exc:
                raise _refused(
                    where, f"{_quoted(ref)} points at something not a valid schema: {exc.message}"
                ) from None
        return target, resolved.resolver

    def _refuse_cycles(self, start: int) -> None:
        """Refuse a cycle of subschemas each applied to the same value: validating would
        never end (a tree's ``items: {"$ref": "#"}`` moves into the data, so it ends)."""
        state: dict[int, int] = {}  # 1 on the current path, 2 done
        stack: list[tuple[int, Iterator[tuple[int, str]]]] = []
        for origin in (start, *self.same_value):
            if origin in state:
                continue
            state[origin] = 1
            stack.append((origin, iter(self.same_value.get(origin, []))))
            while stack:
                node, edges = stack[-1]
                step = next(edges, None)
                if step is None:
                    state[node] = 2
                    stack.pop()
                    continue
                target, where = step
                if state.get(target) == 1:
                    raise _refused(
                        where,
                        "a cycle of references that never moves into the data (back to "
                        f"{self.paths.get(target, 'itself')}); validating would never end",
                    )
                if target not in state:
                    state[target] = 1
                    stack.append((target, iter(self.same_value.get(target, []))))


def _children(node: dict[str, Any], path: str) -> Iterator[tuple[str, Any, bool]]:
    """Each subschema directly under ``node``: its path, itself, and whether the validator
    applies it to the same value as ``node``."""
    for keyword in (*SAME_VALUE, *PART):
        if keyword in node:
            yield f"{path}.{keyword}", node[keyword], keyword in SAME_VALUE
    for keyword in (*SAME_VALUE_EACH, *PART_EACH):
        if isinstance(node.get(keyword), list):
            for index, child in enumerate(node[keyword]):
                yield f"{path}.{keyword}[{index}]", child, keyword in SAME_VALUE_EACH
    for keyword in (*SAME_VALUE_BY_NAME, *PART_BY_NAME):
        if isinstance(node.get(keyword), dict):
            for name, child in node[keyword].items():
                yield f"{path}.{keyword}.{name}", child, keyword in SAME_VALUE_BY_NAME


def _locate(document: Any, root: str) -> dict[int, str]:
    """The path of every object and array in ``document``, by id()."""
    paths: dict[int, str] = {}
    stack = [(document, root)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            paths[id(value)] = path
            stack.extend((child, f"{path}.{key}") for key, child in value.items())
        elif isinstance(value, list):
            paths[id(value)] = path
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(value))
    return paths


def _quoted(ref: str) -> str:
    return repr(ref if len(ref) <= MAX_REF else ref[: MAX_REF - 1] + "…")


def _refused(where: str, reason: str) -> RefusedSchema:
    return RefusedSchema(Refusal(where, _cut(reason)))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"
