"""The committed JSON Schemas of the event, one per version, and what keeps them compatible.

`event-v<N>.json` is `clickstream.events.json_schema()` as it stands for version N; the
files are package data, for other consumers of the topic. The policy they follow: a reader
accepts every older version, so a version may only add optional fields and widen what a
field accepts. `incompatibilities(old, new)` lists what breaks that: the ways in which
documents valid under `old` may be refused under `new`. It reads the shapes pydantic writes
(objects of typed properties, `anyOf` for nullable fields, `$ref` to `$defs` for enums).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

__all__ = ["incompatibilities", "load", "versions"]

_FILE = re.compile(r"^event-v([1-9][0-9]*)\.json$")
Schema = Mapping[str, Any]


def versions() -> list[int]:
    """The versions whose schema is committed, oldest first."""
    names = (entry.name for entry in resources.files(__package__).iterdir())
    return sorted(int(match[1]) for name in names if (match := _FILE.match(name)))


def load(version: int) -> dict[str, Any]:
    """The committed JSON Schema of `version`."""
    text = resources.files(__package__).joinpath(f"event-v{version}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def incompatibilities(old: Schema, new: Schema) -> list[str]:
    """Why a document valid under `old` may be invalid (or read otherwise) under `new`, one
    reason per line; empty if `new` accepts all of it: added optional fields and wider types
    are compatible. Removing a field, requiring one, narrowing or changing a type, dropping
    an enum value and changing a default (a document that omits the field then means
    something else) are not."""
    return _object(old, new, old, new, "")


def _resolve(schema: Schema, root: Schema) -> Schema:
    """`schema` with a local `$ref` (`#/$defs/Name`) replaced by what it points to."""
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    target: Any = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}


def _object(old: Schema, new: Schema, old_root: Schema, new_root: Schema, path: str) -> list[str]:
    problems: list[str] = []
    old_fields: Mapping[str, Schema] = old.get("properties", {})
    new_fields: Mapping[str, Schema] = new.get("properties", {})
    closed = new.get("additionalProperties", True) is False
    if closed and old.get("additionalProperties", True) is not False:
        problems.append(f"{path or 'the event'}: unknown fields are no longer accepted")
    for name, old_field in old_fields.items():
        where = f"{path}{name}"
        if name not in new_fields:
            if closed:
                problems.append(f"{where}: removed")
            continue
        problems += _value(old_field, new_fields[name], old_root, new_root, where)
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    for name in sorted(new_required - old_required):
        was = "optional" if name in old_fields else "new"
        problems.append(f"{path}{name}: required, and was {was}")
    return problems


def _value(old: Schema, new: Schema, old_root: Schema, new_root: Schema, path: str) -> list[str]:
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    problems: list[str] = []
    if "default" in old and old.get("default") != new.get("default"):
        problems.append(
            f"{path}: default changed from {old['default']!r} to {new.get('default')!r}"
        )
    new_options = [_resolve(option, new_root) for option in new.get("anyOf", [new])]
    for option in (_resolve(o, old_root) for o in old.get("anyOf", [old])):
        reasons = [
            _narrowing(option, candidate, old_root, new_root, path) for candidate in new_options
        ]
        if all(reasons):  # no option of `new` takes all that this option of `old` took
            same_type = [
                r for r, c in zip(reasons, new_options, strict=True) if _type(c) == _type(option)
            ]
            problems += (
                same_type[0]
                if same_type
                else [
                    f"{path}: type changed from {_type(option)} to "
                    + " or ".join(_type(c) for c in new_options)
                ]
            )
    return problems


def _type(schema: Schema) -> str:
    kind = schema.get("type")
    if kind is None and "const" in schema:
        kind = type(schema["const"]).__name__
    return str(kind)


#: Keywords that bound a value from below, and from above: a new schema may only loosen them.
_LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems")
_UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems")


def _narrowing(
    old: Schema, new: Schema, old_root: Schema, new_root: Schema, path: str
) -> list[str]:
    """Why `new` refuses some value that `old` accepts; empty if it accepts them all (as far
    as can be told from the keywords: an unknown change of pattern or format counts)."""
    old_type, new_type = old.get("type"), new.get("type")
    if (
        new_type is not None
        and old_type != new_type
        and (old_type, new_type) != ("integer", "number")
    ):
        return [f"{path}: type changed from {_type(old)} to {_type(new)}"]
    problems: list[str] = []
    old_values = old.get("enum", [old["const"]] if "const" in old else None)
    new_values = new.get("enum", [new["const"]] if "const" in new else None)
    if new_values is not None:
        if old_values is None:
            problems.append(f"{path}: now limited to {new_values}")
        elif lost := [v for v in old_values if v not in new_values]:
            problems.append(f"{path}: no longer accepts {lost}")
    for keyword in _LOWER_BOUNDS:
        if new.get(keyword, -math.inf) > old.get(keyword, -math.inf):
            problems.append(f"{path}: {keyword} raised from {old.get(keyword)} to {new[keyword]}")
    for keyword in _UPPER_BOUNDS:
        if new.get(keyword, math.inf) < old.get(keyword, math.inf):
            problems.append(f"{path}: {keyword} lowered from {old.get(keyword)} to {new[keyword]}")
    for keyword in ("pattern", "format"):
        if keyword in new and new[keyword] != old.get(keyword):
            problems.append(
                f"{path}: {keyword} changed from {old.get(keyword)!r} to {new[keyword]!r}"
            )
    if new_type == "object" or "properties" in new:
        problems += _object(old, new, old_root, new_root, f"{path}.")
    return problems
