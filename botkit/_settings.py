"""Turns one TOML table into a frozen settings dataclass, naming the key on any error."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from botkit.exceptions import ConfigError
from botkit.secrets import Secret

__all__ = ["parse_settings"]

T = TypeVar("T")
K = TypeVar("K")

_NONE = type(None)


def parse_settings(
    cls: type[T],
    table: Mapping[str, Any],
    *,
    prefix: str,
    environ: Mapping[str, str],
) -> T:
    """Build ``cls`` (a dataclass) from a TOML table.

    Plain fields take the TOML value of the same name, checked against the field's type
    (``int``, ``float``, ``str``, ``bool``, ``Literal``, ``tuple[X, ...]``, optionals and
    nested dataclasses). A ``Secret`` field ``token`` is never written in the file: the
    table may say ``token_env = "NAME"`` (else ``field(metadata={"env": ...})`` gives the
    default name) and the value is read from that environment variable.

    A settings dataclass (or a nested one) may define ``problems(self, key: str)``,
    yielding a ``ConfigError`` for each inconsistency its types cannot catch (a regex
    that does not compile, two settings that contradict each other); it runs here, when
    the table is parsed, with the table's dotted key, so the faults surface with every
    other fault in the file, before anything starts.

    Raises:
        ConfigError: naming ``prefix.key`` and what is wrong: an unknown key, a wrong
            type, a missing required value, a secret written into the file, a problem
            the settings report; several at once as ``ConfigErrors``.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    known = set(fields)
    secret_names = {name for name in fields if _is_secret(hints[name])}
    known |= {f"{name}_env" for name in secret_names}
    errors: list[ConfigError] = []
    for key in table:
        if key in secret_names:
            errors.append(
                ConfigError(
                    _join(prefix, key),
                    f"secrets are not written in the config file; set {key}_env to the name "
                    "of an environment variable that holds it",
                )
            )
        elif key not in known:
            errors.append(
                ConfigError(
                    _join(prefix, key), f"unknown setting (known: {', '.join(sorted(known))})"
                )
            )
    values: dict[str, Any] = {}
    for name, f in fields.items():
        key = _join(prefix, name)
        try:
            if name in secret_names:
                values[name] = _resolve_secret(f, table, key, environ, hints[name])
            elif name in table:
                values[name] = _convert(table[name], hints[name], key, environ)
            elif _required(f):
                errors.append(ConfigError(key, "is required"))
        except ConfigError as exc:
            errors.append(exc)
    required = {n for n, f in fields.items() if _required(f)}
    if required <= set(values):  # a faulty optional field checks as its default would
        settings = cls(**values)
        check = getattr(settings, "problems", None)
        errors += check(prefix) if check is not None else ()
    if errors:
        raise ConfigError.together(errors)
    return settings


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _is_secret(hint: Any) -> bool:
    return hint is Secret or (_is_optional(hint) and _strip_optional(hint) is Secret)


def _is_optional(hint: Any) -> bool:
    return get_origin(hint) in (Union, types.UnionType) and _NONE in get_args(hint)


def _strip_optional(hint: Any) -> Any:
    args = [a for a in get_args(hint) if a is not _NONE]
    return args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007


def _resolve_secret(
    f: dataclasses.Field[Any],
    table: Mapping[str, Any],
    key: str,
    environ: Mapping[str, str],
    hint: Any,
) -> Secret | None:
    env_name = table.get(f"{f.name}_env", f.metadata.get("env"))
    if env_name is not None and not isinstance(env_name, str):
        raise ConfigError(f"{key}_env", "must be the name of an environment variable")
    value = environ.get(env_name) if env_name else None
    if value:
        return Secret(value, source=env_name)
    if _is_optional(hint):
        return None
    where = f"environment variable {env_name}" if env_name else f"{key}_env"
    raise ConfigError(key, f"is required: set the {where}")


def _convert(value: Any, hint: Any, key: str, environ: Mapping[str, str]) -> Any:
    if hint is Any:
        return value
    if _is_optional(hint):
        return None if value is None else _convert(value, _strip_optional(hint), key, environ)
    origin = get_origin(hint)
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ConfigError(
                key, f"must be one of {', '.join(map(repr, choices))}, not {value!r}"
            )
        return value
    if origin in (tuple, list, frozenset):
        if not isinstance(value, list):
            raise ConfigError(key, f"must be a list, not {_kind(value)}")
        item = get_args(hint)[0]
        items = _each(enumerate(value), lambda i, v: _convert(v, item, f"{key}[{i}]", environ))
        return frozenset(items.values()) if origin is frozenset else tuple(items.values())
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"must be a table, not {_kind(value)}")
        args = get_args(hint)
        if len(args) == 2 and isinstance(args[1], type) and dataclasses.is_dataclass(args[1]):
            return _each(
                value.items(),
                lambda k, v: parse_settings(args[1], v, prefix=f"{key}.{k}", environ=environ),
            )
        return dict(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(key, f"must be a table, not {_kind(value)}")
        return parse_settings(hint, value, prefix=key, environ=environ)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"must be a number, not {_kind(value)}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be an integer, not {_kind(value)}")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise ConfigError(
                key,
                f"must be {'a string' if hint is str else 'true or false'}, not {_kind(value)}",
            )
        return value
    raise TypeError(f"parse_settings cannot read a field of type {hint!r} ({key})")


def _each(items: Iterable[tuple[K, Any]], parse: Callable[[K, Any], Any]) -> dict[K, Any]:
    """Parse every item, and raise the faults of all of them together."""
    values: dict[K, Any] = {}
    errors: list[ConfigError] = []
    for name, value in items:
        try:
            values[name] = parse(name, value)
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        raise ConfigError.together(errors)
    return values


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
