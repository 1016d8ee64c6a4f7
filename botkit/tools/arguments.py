"""A tool's arguments: the JSON schema of a dataclass, checking what the model or a person
wrote against it, and building the dataclass from the checked values.

The model writes arguments as JSON text; a person types words and ``key=value`` pairs
after ``/name`` (:func:`command_values` reads them into a mapping). Both are checked by
:func:`check` against the schema and built into the declared dataclass by :func:`build`;
anything that does not fit is a :class:`ToolArgumentsError` that says what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin

__all__ = [
    "ToolArgumentsError",
    "as_json_values",
    "build",
    "check",
    "command_values",
    "schema_of",
]


class ToolArgumentsError(ValueError):
    """Arguments that do not fit a tool's declaration (from the model or a person)."""


def check(schema: Mapping[str, Any], value: Mapping[str, Any]) -> None:
    """Check ``value`` against a JSON schema.

    Raises:
        ToolArgumentsError: the best-matching error, prefixed with where it is.
    """
    import jsonschema.exceptions  # only a tool checked against a schema needs it
    import jsonschema.validators

    plain = dict(schema)
    validator = jsonschema.validators.validator_for(plain)(plain)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(value)))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        raise ToolArgumentsError(f"{where + ': ' if where else ''}{error.message}")


def command_values(text: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Words and ``key=value`` pairs a person typed, as the mapping ``parameters`` (a JSON
    schema of an object) describes: positional words fill the fields in order, and the
    last text field takes the rest of the line. Not checked yet (:func:`check`).

    Raises:
        ToolArgumentsError: words are left over that no field takes.
    """
    properties: Mapping[str, Any] = parameters.get("properties") or {}
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    named: dict[str, Any] = {}
    positional: list[str] = []
    for word in words:
        key, sep, raw = word.partition("=")
        if sep and key in properties:
            named[key] = _coerce(raw, properties[key])
        else:
            positional.append(word)
    required = set(parameters.get("required") or ())
    free = [name for name in properties if name not in named]
    for index, name in enumerate(free):
        if not positional:
            break
        schema = properties[name]
        later = free[index + 1 :]
        if _kind(schema) == "string" and not any(_kind(properties[f]) == "string" for f in later):
            # the last text field takes every word the fields after it cannot
            keep = len(positional) - _tail_fits(positional[1:], [properties[f] for f in later])
            named[name] = " ".join(positional[:keep])
            positional = positional[keep:]
        elif _fits(positional[0], schema) or name in required:
            # a required field takes the word even when it is wrong: the check says so
            named[name] = _coerce(positional.pop(0), schema)
    unfilled = [name for name in free if name not in named]
    if positional and unfilled:
        named[unfilled[0]] = positional.pop(0)  # the schema check says what it wants
    if positional:
        raise ToolArgumentsError(f"unexpected {' '.join(positional)!r}")
    return named


def schema_of(cls: type[Any]) -> dict[str, Any]:
    """The JSON schema of a dataclass's fields, with descriptions from field metadata
    (``field(metadata={"description": ...})``) or the docstring's ``Attributes:``.

    Raises:
        TypeError: a field's type has no JSON equivalent.
    """
    hints = typing.get_type_hints(cls)
    docs = _attribute_docs(cls.__doc__ or "")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        prop = _type_schema(hints[f.name], f"{cls.__name__}.{f.name}")
        text = f.metadata.get("description") or docs.get(f.name)
        if text:
            prop["description"] = str(text)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
        elif f.default is not dataclasses.MISSING and _jsonable(f.default):
            prop["default"] = f.default
        properties[f.name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def build(cls: type[Any], value: Mapping[str, Any]) -> Any:
    """A dataclass from validated JSON: nested dataclasses and tuples rebuilt."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.init and f.name in value:
            kwargs[f.name] = _convert(hints[f.name], value[f.name])
    return cls(**kwargs)


def as_json_values(arguments: Any) -> dict[str, Any]:
    """Arguments (a dataclass or a mapping) as JSON-ready values, to store and to show."""
    if dataclasses.is_dataclass(arguments) and not isinstance(arguments, type):
        arguments = dataclasses.asdict(arguments)
    values: dict[str, Any] = json.loads(json.dumps(dict(arguments), default=list))
    return values


def _type_schema(hint: Any, where: str) -> dict[str, Any]:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        inner = [_type_schema(a, where) for a in options]
        if len(options) < len(get_args(hint)):
            inner.append({"type": "null"})
        return inner[0] if len(inner) == 1 else {"anyOf": inner}
    if origin is Literal:
        values = list(get_args(hint))
        kinds = {_type_schema(type(v), where)["type"] for v in values}
        return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 else {"enum": values}
    if origin in (list, tuple, Sequence, frozenset, set):
        args = [a for a in get_args(hint) if a is not Ellipsis]
        if origin is tuple and len(args) > 1:
            raise TypeError(f"{where}: fixed-length tuples are not supported; use tuple[X, ...]")
        item = _type_schema(args[0], where) if args else {}
        return {"type": "array", "items": item}
    if origin in (dict, Mapping):
        pair = get_args(hint)
        value = _type_schema(pair[1], where) if len(pair) == 2 else {}
        return {"type": "object", "additionalProperties": value}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return schema_of(hint)
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if hint in simple:
        return {"type": simple[hint]}
    if hint is Any:
        return {}
    raise TypeError(f"{where}: {hint!r} cannot be a tool argument")


def _convert(hint: Any, value: Any) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in get_args(hint) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return build(hint, value)
    if origin in (tuple, frozenset, set) and isinstance(value, list):
        args = [a for a in get_args(hint) if a is not Ellipsis]
        items = [_convert(args[0], v) for v in value] if args else value
        return origin(items)
    if origin is list and isinstance(value, list):
        item = get_args(hint)
        return [_convert(item[0], v) for v in value] if item else value
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _coerce(raw: str, schema: Mapping[str, Any]) -> Any:
    """A typed word as the JSON value the schema wants (left as is when it does not fit)."""
    kind = _kind(schema)
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw
    if kind == "boolean" and raw.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return raw.lower() in ("true", "yes", "on", "1")
    if kind == "array":
        return [_coerce(part.strip(), schema.get("items") or {}) for part in raw.split(",")]
    return raw


def _fits(word: str, schema: Mapping[str, Any]) -> bool:
    """Whether a typed word can be the value of a field of this schema."""
    if "enum" in schema:
        return word in [str(v) for v in schema["enum"]]
    kind = _kind(schema)
    if kind in ("integer", "number", "boolean"):
        return not isinstance(_coerce(word, schema), str)
    return True


def _tail_fits(words: Sequence[str], schemas: Sequence[Mapping[str, Any]]) -> int:
    """How many of the last ``words`` fill fields of ``schemas`` in order, from the end."""
    taken = 0
    for schema in reversed(schemas):
        if taken < len(words) and _fits(words[len(words) - 1 - taken], schema):
            taken += 1
    return taken


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    for option in schema.get("anyOf") or ():
        if isinstance(option, Mapping) and option.get("type") not in (None, "null"):
            return _kind(option)
    if "enum" in schema:
        return "string"
    return ""


def _attribute_docs(doc: str) -> dict[str, str]:
    """``name: text`` entries of a Google-style ``Attributes:`` section."""
    found: dict[str, str] = {}
    inside = False
    current = ""
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Attributes:", "Args:"):
            inside, current = True, ""
        elif inside and (not stripped or re.fullmatch(r"[A-Z]\w*:", stripped)):
            inside = False  # a blank line or the next section ends it
        elif inside:
            entry = re.match(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", stripped)
            if entry:
                current = entry.group(1)
                found[current] = entry.group(2)
            elif current:
                found[current] += " " + stripped
    return found


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
