"""JSON-schema checks, shared by tool calls and structured output (no third-party package).

Tool call arguments (:mod:`langchain_hailuo._tools`) and structured replies
(:mod:`langchain_hailuo._structured`) are checked with :func:`validate_json_schema`; the
error lines it returns (``$.path: message``) are what a repair turn quotes to the model.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["describe_value", "validate_json_schema"]


_JSON_TYPE_NAMES: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def _json_type(value: Any) -> str:
    """The JSON type name of a decoded value."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def describe_value(value: Any) -> str:
    """A short description of a value for an error message."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > 40:  # noqa: PLR2004 - keep messages short
        text = text[:37] + "..."
    return f"{_json_type(value)} {text}"


def _json_equal(left: Any, right: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` equals ``1.0``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and left == right


@dataclass
class _Validator:
    """One validation run: the root schema (for ``$ref``) and the coercion setting."""

    root: Mapping[str, Any]
    coerce_integers: bool
    errors: list[str] = field(default_factory=list)

    def resolve(self, ref: str) -> Any:
        """Resolve a local ``$ref`` (``#/$defs/Name``, ``#/definitions/Name``, ``#``)."""
        if not ref.startswith("#"):
            return None
        node: Any = self.root
        for raw in ref[1:].split("/"):
            if not raw:
                continue
            key = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        return node

    def check(self, value: Any, schema: Any, path: str, depth: int = 0) -> tuple[Any, list[str]]:
        """Validate ``value`` at ``path``; return the (possibly coerced) value and errors."""
        if schema is True or schema is None:
            return value, []
        if schema is False:
            return value, [f"{path}: no value is allowed here"]
        if not isinstance(schema, Mapping) or depth > 64:  # noqa: PLR2004 - recursion guard
            return value, []
        value, errors = self.check_combinators(value, schema, path, depth)
        value, found = self.check_type(value, schema, path)
        if found:
            return value, errors + found
        errors += self.check_enum(value, schema, path)
        value, found = self.check_by_type(value, schema, path, depth)
        return value, errors + found

    def check_combinators(
        self, value: Any, schema: Mapping[str, Any], path: str, depth: int
    ) -> tuple[Any, list[str]]:
        """``$ref``, ``allOf``, ``anyOf`` and ``oneOf``."""
        errors: list[str] = []
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = self.resolve(ref)
            if target is None:
                return value, [f"{path}: the schema refers to {ref!r}, which it does not define"]
            value, found = self.check(value, target, path, depth + 1)
            errors += found
        for sub in schema.get("allOf") or ():
            value, found = self.check(value, sub, path, depth + 1)
            errors += found
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                value, found = self.check_alternatives(value, schema[key], path, key, depth)
                errors += found
        return value, errors

    def check_by_type(
        self, value: Any, schema: Mapping[str, Any], path: str, depth: int
    ) -> tuple[Any, list[str]]:
        """The keywords that apply to the value's own type."""
        errors: list[str] = []
        if isinstance(value, dict):
            value, found = self.check_object(value, schema, path, depth)
            errors += found
        elif isinstance(value, list):
            value, found = self.check_array(value, schema, path, depth)
            errors += found
        elif isinstance(value, str):
            errors += self.check_string(value, schema, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            errors += self.check_number(value, schema, path)
        return value, errors

    def check_alternatives(
        self, value: Any, options: Sequence[Any], path: str, key: str, depth: int
    ) -> tuple[Any, list[str]]:
        """``anyOf`` (at least one option matches) and ``oneOf`` (exactly one does)."""
        matches: list[Any] = []
        failures: list[str] = []
        for option in options:
            checked, found = self.check(value, option, path, depth + 1)
            if found:
                failures.append("; ".join(found))
            else:
                matches.append(checked)
        if not matches:
            detail = " | ".join(failures)
            return value, [
                f"{path}: {describe_value(value)} matches none of the allowed shapes ({detail})"
            ]
        if key == "oneOf" and len(matches) > 1:
            return value, [f"{path}: {describe_value(value)} matches more than one oneOf option"]
        return matches[0], []

    def check_type(self, value: Any, schema: Mapping[str, Any], path: str) -> tuple[Any, list[str]]:
        """The ``type`` keyword (a name or a list of names); whole floats may become integers."""
        expected = schema.get("type")
        if expected is None:
            return value, []
        names = [expected] if isinstance(expected, str) else list(expected)
        for name in names:
            ok, coerced = self.type_matches(value, name)
            if ok:
                return coerced, []
        return value, [
            f"{path}: expected {' or '.join(map(str, names))}, got {describe_value(value)}"
        ]

    def type_matches(self, value: Any, name: str) -> tuple[bool, Any]:
        """Whether ``value`` is of JSON type ``name``, and the value to keep."""
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if name == "integer":
            if is_number and isinstance(value, int):
                return True, value
            if (
                is_number
                and self.coerce_integers
                and math.isfinite(value)
                and float(value).is_integer()
            ):
                return True, int(value)
            return False, value
        checks: dict[str, Callable[[Any], bool]] = {
            "number": lambda v: is_number and math.isfinite(v),
            "string": lambda v: isinstance(v, str),
            "boolean": lambda v: isinstance(v, bool),
            "null": lambda v: v is None,
            "array": lambda v: isinstance(v, list),
            "object": lambda v: isinstance(v, dict),
        }
        check = checks.get(name)
        return (True if check is None else check(value)), value

    def check_enum(self, value: Any, schema: Mapping[str, Any], path: str) -> list[str]:
        """``enum`` and ``const``."""
        errors = []
        if "enum" in schema and not any(_json_equal(value, v) for v in schema["enum"]):
            allowed = ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
            errors.append(f"{path}: {describe_value(value)} is not one of {allowed}")
        if "const" in schema and not _json_equal(value, schema["const"]):
            errors.append(f"{path}: must be {json.dumps(schema['const'], ensure_ascii=False)}")
        return errors

    def check_object(
        self, value: dict[str, Any], schema: Mapping[str, Any], path: str, depth: int
    ) -> tuple[dict[str, Any], list[str]]:
        """``properties``, ``required``, ``additionalProperties``."""
        errors = [
            f"{path}: missing required property {key!r}"
            for key in schema.get("required") or ()
            if key not in value
        ]
        properties = schema.get("properties") or {}
        extra_schema = schema.get("additionalProperties", True)
        result: dict[str, Any] = {}
        for key, item in value.items():
            item_path = f"{path}.{key}" if re.fullmatch(r"\w+", key) else f"{path}[{key!r}]"
            if key in properties:
                sub = properties[key]
            elif extra_schema is False:
                errors.append(f"{path}: unexpected property {key!r}")
                result[key] = item
                continue
            else:
                sub = extra_schema
            result[key], found = self.check(item, sub, item_path, depth + 1)
            errors += found
        return result, errors

    def check_array(
        self, value: list[Any], schema: Mapping[str, Any], path: str, depth: int
    ) -> tuple[list[Any], list[str]]:
        """``items`` / ``prefixItems`` (tuple form too), ``minItems``, ``maxItems``."""
        errors = []
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{path}: needs at least {schema['minItems']} items, got {len(value)}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: allows at most {schema['maxItems']} items, got {len(value)}")
        items = schema.get("items")
        prefix = schema.get("prefixItems")
        if isinstance(items, list):  # the older tuple form
            prefix, items = items, schema.get("additionalItems", True)
        prefix = prefix or []
        result = []
        for index, item in enumerate(value):
            sub = prefix[index] if index < len(prefix) else items
            checked, found = self.check(item, sub, f"{path}[{index}]", depth + 1)
            result.append(checked)
            errors += found
        return result, errors

    def check_string(self, value: str, schema: Mapping[str, Any], path: str) -> list[str]:
        """``minLength``, ``maxLength``, ``pattern``."""
        errors = []
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{path}: must be at least {schema['minLength']} characters long")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: must be at most {schema['maxLength']} characters long")
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                if re.search(pattern, value) is None:
                    errors.append(f"{path}: {describe_value(value)} does not match /{pattern}/")
            except re.error:
                pass  # a pattern Python cannot compile is not the model's fault
        return errors

    def check_number(self, value: float, schema: Mapping[str, Any], path: str) -> list[str]:
        """``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``."""
        bounds: list[tuple[str, Callable[[float, float], bool], str]] = [
            ("minimum", lambda v, b: v >= b, ">="),
            ("maximum", lambda v, b: v <= b, "<="),
            ("exclusiveMinimum", lambda v, b: v > b, ">"),
            ("exclusiveMaximum", lambda v, b: v < b, "<"),
        ]
        errors = []
        for key, holds, sign in bounds:
            bound: Any = schema.get(key)
            is_bound = isinstance(bound, int | float) and not isinstance(bound, bool)
            if is_bound and not holds(value, bound):
                errors.append(f"{path}: must be {sign} {bound}, got {value}")
        return errors


def validate_json_schema(
    value: Any, schema: Mapping[str, Any], *, coerce_integers: bool = True
) -> tuple[Any, list[str]]:
    """Validate a decoded JSON value against a JSON schema: the value and its errors (none: valid).

    Covered: ``type`` (a name or a list), ``enum``, ``const``, ``properties``, ``required``,
    ``additionalProperties`` (``false`` or a schema), ``items`` / ``prefixItems``,
    ``minItems`` / ``maxItems``, ``minLength`` / ``maxLength`` / ``pattern``,
    ``minimum`` / ``maximum`` / ``exclusiveMinimum`` / ``exclusiveMaximum``, ``anyOf``,
    ``oneOf``, ``allOf`` and local ``$ref`` (``#/$defs/...``, ``#/definitions/...``); other
    keywords are ignored. ``true`` is never an integer, although Python's ``bool`` is an
    ``int``. With ``coerce_integers`` a whole float (``3.0``) where an ``integer`` is wanted is
    accepted and returned as ``3`` (in a copy); strings are never coerced. Each error starts
    with its JSON path (``$.items[0].id: ...``).
    """
    validator = _Validator(root=schema, coerce_integers=coerce_integers)
    return validator.check(value, schema, "$")
