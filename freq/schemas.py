"""The packaged JSON Schemas (draft 2020-12), cached validators, and their errors in plain words.

Imports jsonschema, the standard library and freq.model (durations) only: no yaml (config.py
reads files). Errors come back as Violations: a path into the document and a one-line reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from freq.layout import FACTORY_SCHEMA as FACTORY
from freq.layout import SETTINGS_SCHEMA as SETTINGS
from freq.layout import schema_text
from freq.model import DurationTooLong, parse_duration

JsonPath = tuple[str | int, ...]

_KINDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}


# Our own formats; a JSON Schema tool that does not know them ignores them (annotations).
_FORMATS = FormatChecker(formats=())


def _duration_fits(value: object) -> bool:
    """A duration the pattern accepts must also fit: parse_duration bounds its length."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        try:
            parse_duration(value)
        except DurationTooLong:
            raise
        except ValueError:
            pass  # malformed: the pattern and minimum keywords say so, in their words
    return True


_FORMATS.checks("freq-duration", raises=DurationTooLong)(_duration_fits)


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    """One schema error: where in the document (keys and indexes) and why, in plain words."""

    path: JsonPath
    reason: str


@cache
def load_schema(name: str) -> Mapping[str, Any]:
    """The parsed schema `name` (FACTORY or SETTINGS)."""
    schema: dict[str, Any] = json.loads(schema_text(name))
    return schema


@cache
def factory_validator() -> Any:
    """A cached Draft202012Validator for one factory file."""
    return Draft202012Validator(load_schema(FACTORY), format_checker=_FORMATS)


@cache
def settings_validator() -> Any:
    """A cached Draft202012Validator for `.frequency/frequency.yaml`."""
    return Draft202012Validator(load_schema(SETTINGS), format_checker=_FORMATS)


def violations(validator: Any, instance: object) -> list[Violation]:
    """Every schema error of `instance`, rewritten into short reasons, without duplicates."""
    found: dict[Violation, None] = {}
    for error in validator.iter_errors(instance):
        for v in _rewrite(error):
            found.setdefault(v, None)
    return list(found)


def _rewrite(error: Any) -> Iterator[Violation]:
    """One jsonschema error → our Violations (unknown and missing fields one per name)."""
    path: JsonPath = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    kind, value, inst = error.validator, error.validator_value, error.instance
    if kind in ("anyOf", "oneOf") and error.context:
        yield from _rewrite(best_match(error.context))
    elif kind == "format" and error.cause is not None:
        yield Violation(path=path, reason=str(error.cause))
    elif schema.get("title") == "duration":
        yield Violation(
            path=path, reason=f"{_show(inst)} is not a duration (use e.g. 90s, 40m, 2h)"
        )
    elif schema.get("title") == "exit code":
        yield Violation(path=(*path, inst), reason=f"{_show(inst)} is not an exit code (0 to 255)")
    elif kind == "additionalProperties":
        known = schema.get("properties", {})
        for key in inst:
            if key not in known:
                yield Violation(path=(*path, key), reason=f"unknown field {_show(key)}")
    elif kind == "required":
        for key in value:
            if key not in inst:
                yield Violation(path=path, reason=f"missing field {key!r}")
    else:
        reason = _reason(kind, value, inst, schema)
        yield Violation(path=path, reason=reason or str(error.message))


def _reason(kind: str, value: Any, inst: object, schema: Mapping[str, Any]) -> str | None:
    """The plain reason for a single-keyword failure; None for jsonschema's own message."""
    if kind == "type":
        kinds = [value] if isinstance(value, str) else list(value)
        return f"must be {' or '.join(_KINDS[k] for k in kinds)}, not {_show(inst)}"
    if kind == "enum":
        return "must be one of: " + ", ".join(str(v) for v in value)
    if kind == "minimum":
        return f"must be at least {value}"
    if kind == "maximum":
        return f"must be at most {value}"
    if kind in ("minItems", "minLength"):
        return "must not be empty" if value == 1 else f"must have at least {value} items"
    if kind == "maxItems":
        return f"must have at most {value} items"
    if kind in ("minProperties", "maxProperties"):
        names = ", ".join(schema.get("properties", {}))
        return f"must have exactly one of: {names}"
    if kind == "uniqueItems" and isinstance(inst, list):
        return f"lists {_show(_first_repeat(inst))} twice"
    return None


def _first_repeat(items: Iterable[object]) -> object:
    """The first item of a list that appears again."""
    seen: list[object] = []
    for item in items:
        if item in seen:
            return item
        seen.append(item)
    return None


def _show(value: object) -> str:
    """A value as a reason quotes it: strings quoted, containers by kind."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def check_schemas() -> list[str]:
    """Every shipped schema against the draft 2020-12 metaschema; problems as lines."""
    from jsonschema.exceptions import SchemaError

    problems = []
    for name in (FACTORY, SETTINGS):
        try:
            Draft202012Validator.check_schema(load_schema(name))
        except SchemaError as exc:
            problems.append(f"schemas/{name}: {exc.message}")
        except ValueError as exc:
            problems.append(f"schemas/{name}: not JSON ({exc})")
    return problems


if __name__ == "__main__":  # `make lint`: python -m freq.schemas --check
    import sys

    found = check_schemas()
    for line in found:
        print(line, file=sys.stderr)  # noqa: T201 - a developer check, not the product
    print(f"schemas: {2 - len(found)} of 2 valid against draft 2020-12")  # noqa: T201
    sys.exit(1 if found else 0)
