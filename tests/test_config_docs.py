"""docs/config.md and schemas/*.json cannot drift: every property a schema defines is in a
table of the reference, and every key the reference's tables name is a schema property."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "config.md"


def _properties(node: Any) -> Iterator[str]:
    """Every name under a `properties` of the schema, at any depth (and in $defs)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                yield from value
            yield from _properties(value)
    elif isinstance(node, list):
        for value in node:
            yield from _properties(value)


def schema_keys() -> set[str]:
    keys: set[str] = set()
    for path in sorted((ROOT / "schemas").glob("*.schema.json")):
        keys.update(_properties(json.loads(path.read_text())))
    return keys


def documented_keys() -> set[str]:
    """Keys named in the reference's tables: the first column of each `| field |` table
    (dotted names give each part), and for the predicates' `| type | fields |` table the
    kind and every field its second column names (`{type: all, predicates: [...]}` too)."""
    keys: set[str] = set()
    header = ""
    for line in DOC.read_text().splitlines():
        if not line.startswith("|"):
            header = ""
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not header:
            header = cells[0]
            continue
        if set(cells[0]) <= {"-", " "}:
            continue
        first = re.fullmatch(r"`([A-Za-z_][A-Za-z0-9_.]*)`", cells[0])
        if header == "field" and first:
            keys.update(first.group(1).split("."))
        elif header == "type" and first:
            keys.add(first.group(1))
            fields = re.sub(r"\([^)]*\)", "", cells[1])  # asides name values, not fields
            for code in re.findall(r"`([^`]+)`", fields):
                keys.update(re.findall(r"([a-z_]+):", code))
                if re.fullmatch(r"[a-z_]+", code):
                    keys.add(code)
    return keys


def test_every_schema_property_is_in_the_reference() -> None:
    """A field added to a schema must be documented in docs/config.md's tables."""
    missing = sorted(schema_keys() - documented_keys())
    assert not missing, f"in schemas/ but not in docs/config.md's tables: {missing}"


def test_every_documented_key_is_a_schema_property() -> None:
    """A field the reference documents must exist in a schema (no stale or invented keys)."""
    extra = sorted(documented_keys() - schema_keys())
    assert not extra, f"in docs/config.md's tables but in no schema: {extra}"


def test_the_reference_covers_both_schemas_at_all() -> None:
    """The check is not vacuous: both schemas have dozens of properties, all found."""
    assert len(schema_keys()) > 60
    assert {"max_parallel", "when_changed", "on_conflict", "not_states", "jitter"} <= (
        documented_keys()
    )
