"""The ``[adapters.telegram]`` table: the documented example parses, secrets stay secret."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping

import pytest

from botkit import ConfigError
from botkit._settings import parse_settings
from botkit_telegram import TelegramAdapter, TelegramSettings
from tests.fakes.example_config import example_table


def parse(table: Mapping[str, object], environ: dict[str, str]) -> TelegramSettings:
    return parse_settings(TelegramSettings, table, prefix="adapters.telegram", environ=environ)


def test_documented_example_parses_with_the_token_from_the_environment() -> None:
    table = tomllib.loads(example_table("[adapters.telegram]"))["adapters"]["telegram"]
    settings = parse(table, {"TELEGRAM_BOT_TOKEN": "123:abc"})
    assert settings.token.reveal() == "123:abc"
    assert settings.token.source == "TELEGRAM_BOT_TOKEN"
    assert settings.mode == "polling"
    assert settings.webhook_secret is None
    TelegramAdapter("telegram", settings)


def test_webhook_settings_read_the_secret_from_its_own_variable() -> None:
    table = {
        "mode": "webhook",
        "webhook_url": "https://bot.example.com/telegram/webhook",
        "allowed_users": [1, 2],
    }
    settings = parse(table, {"TELEGRAM_BOT_TOKEN": "123:abc", "TELEGRAM_WEBHOOK_SECRET": "s3cret"})
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.reveal() == "s3cret"
    assert settings.allowed_users == (1, 2)
    assert "s3cret" not in repr(settings)
    assert "123:abc" not in repr(settings)


def test_a_token_written_into_the_file_is_refused() -> None:
    with pytest.raises(ConfigError) as raised:
        parse({"token": "123:abc"}, {})
    assert raised.value.key == "adapters.telegram.token"


def test_a_missing_token_names_the_variable() -> None:
    with pytest.raises(ConfigError) as raised:
        parse({}, {})
    assert "TELEGRAM_BOT_TOKEN" in str(raised.value)
