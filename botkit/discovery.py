"""Finding adapters and plugins: entry points, or an import path from the config.

Everything is resolved and type-checked when the bot starts, so a typo or a broken
package fails there with a ``PluginError``, not at the first message.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from botkit.adapter import Adapter
from botkit.exceptions import PluginError
from botkit.plugin import Plugin

__all__ = ["ADAPTER_GROUP", "PLUGIN_GROUP", "load_adapter_class", "load_plugin"]

ADAPTER_GROUP = "botkit.adapters"
PLUGIN_GROUP = "botkit.plugins"


def load_adapter_class(name: str, use: str | None = None) -> type[Adapter]:
    """The adapter class for ``[adapters.NAME]`` (its ``use`` path, else the entry point)."""
    obj = _resolve(ADAPTER_GROUP, name, use)
    if not (isinstance(obj, type) and issubclass(obj, Adapter)):
        raise PluginError(f"adapter {name!r}: {obj!r} is not a botkit.Adapter subclass")
    return obj


def load_plugin(name: str, use: str | None = None) -> Plugin:
    """The ``Plugin`` object for ``[plugins.NAME]``."""
    obj = _resolve(PLUGIN_GROUP, name, use)
    if not isinstance(obj, Plugin):
        raise PluginError(f"plugin {name!r}: {obj!r} is not a botkit.Plugin object")
    return obj


def _resolve(group: str, name: str, use: str | None) -> Any:
    kind = group.split(".")[1][:-1]
    if use is not None:
        return import_path(use, what=f"{kind} {name!r}")
    found = [ep for ep in entry_points(group=group) if ep.name == name]
    if not found:
        available = sorted({ep.name for ep in entry_points(group=group)})
        raise PluginError(
            f"no {kind} named {name!r} is installed (entry point group {group}; "
            f"available: {', '.join(available) or 'none'}); install its package or "
            f'set use = "package.module:Name"'
        )
    if len({ep.value for ep in found}) > 1:
        raise PluginError(
            f"{kind} {name!r} is provided by several packages: "
            + ", ".join(sorted(ep.value for ep in found))
        )
    try:
        return found[0].load()
    except Exception as exc:
        raise PluginError(f"{kind} {name!r} ({found[0].value}) failed to load: {exc}") from exc


def import_path(path: str, *, what: str) -> Any:
    """Import ``"package.module:Name"``."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise PluginError(f'{what}: {path!r} is not an import path like "package.module:Name"')
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise PluginError(f"{what}: cannot import {module_name!r}: {exc}") from exc
    try:
        obj: Any = module
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise PluginError(f"{what}: {module_name!r} has no {attribute!r}") from None
    return obj
