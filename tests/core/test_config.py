"""Configuration: defaults, environment overrides, secrets and errors that name the key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from botkit import ConfigError, ConfigErrors, Secret
from botkit._settings import parse_settings
from botkit.config import load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


def test_no_file_gives_runnable_offline_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.database.url == "sqlite:///botkit.db"
    assert config.llm.stand_in
    assert [a.name for a in config.adapters] == ["console"]
    assert [p.name for p in config.plugins] == ["chat"]


def test_conventional_environment_variables_override_the_file(tmp_path: Path) -> None:
    file = tmp_path / "bot.toml"
    file.write_text('[llm]\nmodel = "gpt-4"\nbase_url = "http://file.example/v1"\n')
    config = load_config(
        file,
        environ={
            "OPENAI_API_KEY": "sk-abc",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "BOTKIT_MODEL": "gpt-4o",
            "BOTKIT_DATABASE_URL": "postgresql://db/bot",
        },
    )
    assert config.llm.model == "gpt-4o"
    assert config.llm.base_url == "http://127.0.0.1:9/v1"
    assert config.database.url == "postgresql://db/bot"
    assert config.llm.api_key is not None
    assert config.llm.api_key.reveal() == "sk-abc"
    assert not config.llm.stand_in


def test_botkit_config_variable_picks_the_file(tmp_path: Path) -> None:
    file = tmp_path / "other.toml"
    file.write_text('[bot]\nname = "picked"\n')
    assert load_config(environ={"BOTKIT_CONFIG": str(file)}).bot.name == "picked"


def test_the_example_config_loads_as_is() -> None:
    config = load_config(ROOT / "config.example.toml", environ={})
    assert config.llm.stand_in
    assert [a.name for a in config.adapters] == ["console"]


@pytest.mark.parametrize(
    ("toml", "key", "problem"),
    [
        ('[llm]\ntimeout = "soon"\n', "llm.timeout", "must be a number, not a string"),
        ("[llm]\ntimeout = -1\n", "llm.timeout", "positive"),
        ('[bot]\nburst = "all"\n', "bot.burst", "must be one of 'queue', 'coalesce'"),
        ("[bot]\nmax_inflight = 3\n", "bot.max_inflight", "unknown setting"),
        ('[llm]\napi_key = "sk-in-the-file"\n', "llm.api_key", "secrets are not written"),
        ("[database]\nurl = 5\n", "database.url", "must be a string"),
        ('[llm]\nbase_url = "api.openai.com"\n', "llm.base_url", "http://"),
        ("[webhooks]\nx = 1\n", "webhooks", "unknown section"),
        ('[plugins.chat]\nuse = "nocolon"\n', "plugins.chat.use", "import path"),
        ("[web]\nport = 70000\n", "web.port", "port number"),
    ],
)
def test_a_bad_setting_names_its_key(tmp_path: Path, toml: str, key: str, problem: str) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(file, environ={})
    assert caught.value.key == key
    assert problem in str(caught.value)


def test_invalid_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[bot\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", environ={})


@dataclass(frozen=True)
class _AdapterSettings:
    token: Secret = field(metadata={"env": "MY_TOKEN"})
    chats: tuple[int, ...] = ()
    webhook_secret: Secret | None = None


def test_secrets_come_from_the_named_variable_and_never_print() -> None:
    settings = parse_settings(
        _AdapterSettings, {"chats": [1, 2]}, prefix="adapters.x", environ={"MY_TOKEN": "t0ken"}
    )
    assert settings.token.reveal() == "t0ken"
    assert settings.chats == (1, 2)
    assert settings.webhook_secret is None
    assert "t0ken" not in repr(settings)
    assert "t0ken" not in str(settings.token)
    renamed = parse_settings(
        _AdapterSettings, {"token_env": "OTHER"}, prefix="adapters.x", environ={"OTHER": "z"}
    )
    assert renamed.token.reveal() == "z"


def test_a_missing_required_secret_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(_AdapterSettings, {}, prefix="adapters.x", environ={})
    assert caught.value.key == "adapters.x.token"
    assert "MY_TOKEN" in str(caught.value)


def test_list_items_are_checked_one_by_one() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(
            _AdapterSettings, {"chats": [1, "two"]}, prefix="adapters.x", environ={"MY_TOKEN": "t"}
        )
    assert caught.value.key == "adapters.x.chats[1]"


def test_adapters_and_plugins_keep_order_and_honour_enabled() -> None:
    config = parse_config(
        {
            "adapters": {"console": {"enabled": False}, "mine": {"use": "pkg.mod:Thing"}},
            "plugins": {"chat": {}, "extra": {"use": "pkg:Plugin", "enabled": True}},
        },
        environ={},
    )
    assert [(a.name, a.use) for a in config.adapters] == [("mine", "pkg.mod:Thing")]
    assert [p.name for p in config.plugins] == ["chat", "extra"]


def test_the_example_config_documents_every_setting() -> None:
    import dataclasses

    from botkit.config import (
        BotSection,
        DatabaseSection,
        LLMSection,
        OutboxSection,
        WebSection,
    )
    from botkit.secrets import Secret as SecretType
    from botkit_chat import ChatPluginSettings
    from botkit_console import ConsoleSettings

    text = (ROOT / "config.example.toml").read_text()
    sections = {
        "bot": BotSection,
        "database": DatabaseSection,
        "llm": LLMSection,
        "web": WebSection,
        "outbox": OutboxSection,
        "adapters.console": ConsoleSettings,
        "plugins.chat": ChatPluginSettings,
    }
    for section, cls in sections.items():
        header = f"[{section}]"
        assert header in text, header
        body = text.split(header, 1)[1].split("\n[", 1)[0]
        hints = __import__("typing").get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = (
                f"{f.name}_env"
                if SecretType in (hints[f.name], *getattr(hints[f.name], "__args__", ()))
                else f.name
            )
            if key == "models":
                assert "[llm.models." in text
                continue
            assert f"{key} =" in body or f"# {key} =" in body, f"{section}.{key} undocumented"


def test_every_fault_in_the_file_is_reported_at_once(tmp_path: Path) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(
        "[bot]\nmax_in_flight = 0\nhistory_limit = 0\n"
        '[llm]\ntimeout = "forever"\nmodle = "x"\n'
        "[webhooks]\n"
        "[plugins.chat]\nenabled = 1\n"
    )
    with pytest.raises(ConfigErrors) as caught:
        load_config(file, environ={})
    assert [e.key for e in caught.value.errors] == [
        "webhooks",
        "llm.modle",
        "llm.timeout",
        "bot.max_in_flight",
        "bot.history_limit",
        "plugins.chat.enabled",
    ]
    assert str(caught.value).splitlines() == [str(e) for e in caught.value.errors]


@dataclass(frozen=True)
class _Checked:
    low: int = 0
    high: int = 10

    def problems(self, key: str) -> Iterator[ConfigError]:
        if self.low > self.high:
            yield ConfigError(f"{key}.low", "must not be above high")


def test_settings_report_their_own_problems_when_parsed() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(_Checked, {"low": 11}, prefix="plugins.x", environ={})
    assert str(caught.value) == "plugins.x.low: must not be above high"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://bot@127.0.0.1/bot", "mysql: botkit runs on SQLite"),
        ("not a url", "is not a database URL"),
    ],
)
def test_a_database_botkit_cannot_run_on_is_refused_when_the_file_is_read(
    url: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"database": {"url": url}}, environ={})
    assert caught.value.key == "database.url"
    assert problem in caught.value.problem
