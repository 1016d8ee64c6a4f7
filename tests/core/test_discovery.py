"""Finding adapters and plugins: entry points, import paths, and the errors at start."""

from __future__ import annotations

import pytest

from botkit import Plugin, PluginError
from botkit.bot import build_adapters, build_plugins
from botkit.config import parse_config
from botkit.discovery import import_path, load_adapter_class, load_plugin

not_a_plugin = object()
also_named_chat = Plugin("chat")


def test_built_ins_are_found_through_their_entry_points() -> None:
    assert load_adapter_class("console").__name__ == "ConsoleAdapter"
    assert load_plugin("chat").name == "chat"


def test_an_import_path_loads_any_adapter_or_plugin() -> None:
    assert load_adapter_class("mine", "botkit_console:ConsoleAdapter").__name__ == "ConsoleAdapter"
    assert load_plugin("mine", "botkit_chat.plugin:plugin").name == "chat"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_module:thing", "cannot import 'no_such_module'"),
        ("botkit_chat:missing", "has no 'missing'"),
        ("botkit_chat", "not an import path"),
    ],
)
def test_a_bad_import_path_says_what_is_wrong(path: str, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        import_path(path, what="plugin 'x'")


def test_an_unknown_name_lists_what_is_installed() -> None:
    with pytest.raises(PluginError, match=r"no plugin named 'nope'.*available: .*chat"):
        load_plugin("nope")


def test_objects_of_the_wrong_type_are_refused() -> None:
    with pytest.raises(PluginError, match=r"is not a botkit\.Plugin"):
        load_plugin("x", f"{__name__}:not_a_plugin")
    with pytest.raises(PluginError, match=r"is not a botkit\.Adapter subclass"):
        load_adapter_class("x", "botkit_chat:plugin")


def test_a_plugin_enabled_twice_is_refused() -> None:
    config = parse_config(
        {"plugins": {"chat": {}, "again": {"use": f"{__name__}:also_named_chat"}}}, environ={}
    )
    with pytest.raises(PluginError, match="enabled twice"):
        build_plugins(config)


def test_settings_for_a_component_without_settings_are_refused() -> None:
    config = parse_config(
        {"plugins": {"odd": {"use": f"{__name__}:also_named_chat", "colour": "red"}}}, environ={}
    )
    with pytest.raises(PluginError, match="takes no settings"):
        build_plugins(config)


def test_adapter_settings_are_parsed_and_checked() -> None:
    config = parse_config({"adapters": {"console": {"prompt": ">> "}}}, environ={})
    [adapter] = build_adapters(config).values()
    assert adapter.settings.prompt == ">> "  # type: ignore[attr-defined]
    bad = parse_config({"adapters": {"console": {"prompt": 3}}}, environ={})
    with pytest.raises(Exception, match=r"adapters.console.prompt: must be a string"):
        build_adapters(bad)
