"""The event schemas compiled to plain Python checks, for validating events at ingest speed.

:func:`gateway.event_schemas.validate_event` uses ``jsonschema`` (a development dependency):
about 400 µs an event, measured, where the bridge ingests ~13,000 events a second. This module
compiles the same schemas (:func:`~gateway.event_schemas.registry.schema_for`, open, not strict)
into closures once, and checks an event in a few microseconds; it needs nothing outside the
standard library. It knows the keywords the specs are written with (``spec.py``) and refuses
to compile a schema using any other, so that a keyword added to a spec cannot be silently
ignored. ``tests/unit/test_event_checker.py`` checks that it agrees with ``jsonschema`` on
every type's example and on many mutations of them.

As with ``jsonschema``'s default, ``format`` is an annotation (not asserted).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import cache
from typing import Any

from gateway.event_schemas.envelope import envelope_schema
from gateway.event_schemas.registry import EVENT_TYPES, schema_for
from gateway.event_schemas.spec import JSON

__all__ = ["check_event", "compile_schema"]

#: (value, path, errors) → None; appends ``path: message`` lines to errors.
Check = Callable[[Any, tuple[Any, ...], list[str]], None]

ANNOTATIONS = frozenset(
    {"$schema", "$id", "title", "description", "examples", "format", "default", "$comment"}
)
KNOWN = ANNOTATIONS | {
    "type", "properties", "required", "additionalProperties", "allOf", "anyOf", "oneOf", "not",
    "if", "then", "else", "const", "enum", "items", "minItems", "maxItems", "uniqueItems",
    "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "pattern",
}  # fmt: skip


def _where(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(event)"


def _is_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float)
    raise ValueError(f"unknown JSON type {kind!r}")


def _equal(a: Any, b: Any) -> bool:
    """JSON equality as JSON Schema means it: booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return bool(type(a) is type(b) or (_num(a) and _num(b))) and a == b


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _unique(items: list[Any]) -> bool:
    if all(isinstance(x, str) for x in items):
        return len(set(items)) == len(items)
    return not any(_equal(a, b) for i, a in enumerate(items) for b in items[i + 1 :])


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def compile_schema(schema: JSON) -> Check:
    """Compile one schema (no ``$ref``) into a check; ValueError for an unknown keyword."""
    unknown = set(schema) - KNOWN
    if unknown:
        raise ValueError(f"cannot compile schema keywords {sorted(unknown)}")
    checks: list[Check] = []
    kinds = schema.get("type")
    if kinds is not None:
        kind_list = [kinds] if isinstance(kinds, str) else list(kinds)
        wanted = " or ".join(repr(k) for k in kind_list)
        test = _type_test(kind_list)

        def type_check(v: Any, path: tuple[Any, ...], errors: list[str]) -> None:
            if not test(v):
                errors.append(f"{_where(path)}: {_short(v)} is not of type {wanted}")

        checks.append(type_check)
    if "const" in schema:
        want = schema["const"]

        def const_check(v: Any, path: tuple[Any, ...], errors: list[str]) -> None:
            if not _equal(v, want):
                errors.append(f"{_where(path)}: {want!r} was expected")

        checks.append(const_check)
    if "enum" in schema:
        options = list(schema["enum"])

        def enum_check(v: Any, path: tuple[Any, ...], errors: list[str]) -> None:
            if not any(_equal(v, o) for o in options):
                errors.append(f"{_where(path)}: {_short(v)} is not one of {options!r}")

        checks.append(enum_check)
    checks += _string_checks(schema)
    checks += _number_checks(schema)
    checks += _array_checks(schema)
    checks += _object_checks(schema)
    checks += _combinators(schema)

    return _all(checks)


def _all(checks: list[Check]) -> Check:
    """One check running ``checks`` in order (unrolled for the common small counts)."""
    if not checks:
        return lambda v, path, errors: None
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks

        def two(v: Any, path: tuple[Any, ...], errors: list[str]) -> None:
            a(v, path, errors)
            b(v, path, errors)

        return two

    def run(v: Any, path: tuple[Any, ...], errors: list[str]) -> None:
        for c in checks:
            c(v, path, errors)

    return run


_SIMPLE: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "object": dict,
    "array": list,
    "boolean": bool,
}


def _type_test(kinds: list[str]) -> Callable[[Any], bool]:
    for k in kinds:
        _is_type(None, k)  # unknown type names fail at compile time
    if len(kinds) == 1 and kinds[0] in _SIMPLE:
        cls = _SIMPLE[kinds[0]]
        return lambda v: isinstance(v, cls)
    if set(kinds) == {"string", "null"}:
        return lambda v: v is None or isinstance(v, str)
    return lambda v: any(_is_type(v, k) for k in kinds)


def _string_checks(schema: JSON) -> list[Check]:
    out: list[Check] = []
    lo, hi = schema.get("minLength"), schema.get("maxLength")
    pattern = schema.get("pattern")
    if lo is None and hi is None and pattern is None:
        return out
    search = re.compile(pattern).search if pattern is not None else None

    def string_check(v: Any, path: tuple[Any, ...], errors: list[str]) -> None:
        if not isinstance(v, str):
            return
        if lo is not None and len(v) < lo:
            errors.append(f"{_where(path)}: {_short(v)} is too short (at least {lo})")
        if hi is not None and len(v) > hi:
            errors.append(f"{_where(path)}: {_short(v)} is too long (at most {hi})")
        if search is not None and search(v) is None:
            errors.append(f"{_where(path)}: {_short(v)} does not match {pattern!r}")

    out.append(string_check)
    return out


def _number_checks(schema: JSON) -> list[Check]:
    bounds = [
        (k, schema[k])
        for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
        if k in schema
    ]
    if not bounds:
        return []

    def number_check(v: Any, path: tuple[Any, ...], errors: list[str]) -> None:
        if not _num(v) or (isinstance(v, float) and math.isnan(v)):
            return
        for k, b in bounds:
            bad = (
                (k == "minimum" and v < b)
                or (k == "maximum" and v > b)
                or (k == "exclusiveMinimum" and v <= b)
                or (k == "exclusiveMaximum" and v >= b)
            )
            if bad:
                errors.append(f"{_where(path)}: {v!r} is out of range ({k} {b!r})")

    return [number_check]


def _array_checks(schema: JSON) -> list[Check]:
    out: list[Check] = []
    if "items" in schema:
        item = compile_schema(schema["items"])

        def items_check(v: Any, path: tuple[Any, ...], errors: list[str]) -> None:
            if isinstance(v, list):
                for i, x in enumerate(v):
                    item(x, (*path, i), errors)

        out.append(items_check)
    lo, hi = schema.get("minItems"), schema.get("maxItems")
    unique = bool(schema.get("uniqueItems"))
    if lo is not None or hi is not None or unique:

        def size_check(v: Any, path: tuple[Any, ...], errors: list[str]) -> None:
            if not isinstance(v, list):
                return
            if lo is not None and len(v) < lo:
                errors.append(f"{_where(path)}: has {len(v)} items, at least {lo} expected")
            if hi is not None and len(v) > hi:
                errors.append(f"{_where(path)}: has {len(v)} items, at most {hi} expected")
            if unique and not _unique(v):
                errors.append(f"{_where(path)}: has non-unique elements")

        out.append(size_check)
    return out


def _object_checks(schema: JSON) -> list[Check]:
    out: list[Check] = []
    props = {k: compile_schema(s) for k, s in schema.get("properties", {}).items()}
    required = list(schema.get("required", []))
    additional = schema.get("additionalProperties", True)
    closed = additional is False
    rest = None if isinstance(additional, bool) else compile_schema(additional)
    if not (props or required or closed or rest):
        return out
    prop_items = list(props.items())

    def object_check(v: Any, path: tuple[Any, ...], errors: list[str]) -> None:
        if not isinstance(v, dict):
            return
        for name in required:
            if name not in v:
                errors.append(f"{_where(path)}: {name!r} is a required property")
        for name, check in prop_items:
            if name in v:
                check(v[name], (*path, name), errors)
        if closed:
            extra = sorted(k for k in v if k not in props)
            if extra:
                errors.append(f"{_where(path)}: additional properties {extra} are not allowed")
        elif rest is not None:
            for k, x in v.items():
                if k not in props:
                    rest(x, (*path, k), errors)

    out.append(object_check)
    return out


def _combinators(schema: JSON) -> list[Check]:
    out: list[Check] = []
    for sub in schema.get("allOf", []):
        out.append(compile_schema(sub))
    for key in ("anyOf", "oneOf"):
        if key not in schema:
            continue
        subs = [compile_schema(s) for s in schema[key]]
        one = key == "oneOf"

        def some_check(
            v: Any, path: tuple[Any, ...], errors: list[str], subs: list[Check] = subs,
            one: bool = one, key: str = key,
        ) -> None:  # fmt: skip
            passed = sum(1 for s in subs if _passes(s, v))
            if passed == 0 or (one and passed > 1):
                errors.append(f"{_where(path)}: {_short(v)} is not valid under {key}")

        out.append(some_check)
    if "not" in schema:
        negated = compile_schema(schema["not"])

        def not_check(v: Any, path: tuple[Any, ...], errors: list[str]) -> None:
            if _passes(negated, v):
                errors.append(f"{_where(path)}: {_short(v)} must not match a schema")

        out.append(not_check)
    if "if" in schema:
        cond = compile_schema(schema["if"])
        then = compile_schema(schema["then"]) if "then" in schema else None
        other = compile_schema(schema["else"]) if "else" in schema else None

        def if_check(v: Any, path: tuple[Any, ...], errors: list[str]) -> None:
            branch = then if _passes(cond, v) else other
            if branch is not None:
                branch(v, path, errors)

        out.append(if_check)
    return out


def _passes(check: Check, v: Any) -> bool:
    errors: list[str] = []
    check(v, (), errors)
    return not errors


@cache
def _envelope() -> Check:
    return compile_schema(envelope_schema())


@cache
def _checkers() -> dict[str, Check]:
    return {t: compile_schema(schema_for(t)) for t in EVENT_TYPES}


def check_event(obj: Any) -> tuple[list[str], bool]:
    """Every mistake in ``obj`` as ``path: message`` (as :func:`~.validate.event_errors`, not
    strict), and whether its type has a schema (False: only the envelope was checked)."""
    errors: list[str] = []
    etype = obj.get("type") if isinstance(obj, dict) else None
    check = _checkers().get(etype) if isinstance(etype, str) else None
    if check is not None:  # the type's schema holds the envelope's too: one pass
        check(obj, (), errors)
        return errors, True
    _envelope()(obj, (), errors)
    return errors, False
