"""``[adapters.slack]`` as the core parses it, and the one place Slack errors are mapped."""

from __future__ import annotations

import tomllib
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from botkit import (
    AuthenticationError,
    ConfigError,
    RateLimitError,
    RequestRejectedError,
    Secret,
    ServiceUnavailableError,
)
from botkit.bot import build_adapters
from botkit.config import parse_config
from botkit_slack import SlackAdapter, SlackSettings
from botkit_slack._errors import service_error
from tests.fakes.example_config import example_table

ENV = {
    "SLACK_BOT_TOKEN": "xoxb-from-env",
    "SLACK_APP_TOKEN": "xapp-from-env",
    "SLACK_SIGNING_SECRET": "signing-from-env",
}


def _adapter_from(toml: str, environ: dict[str, str]) -> SlackAdapter:
    """Build the adapter the way ``Bot`` does: config parse, then the adapter's settings.

    ``use`` names the class directly, so this does not depend on the installed entry
    points being current.
    """
    toml = toml.replace(
        "[adapters.slack]\n", '[adapters.slack]\nuse = "botkit_slack:SlackAdapter"\n'
    )
    config = parse_config(tomllib.loads(toml), environ=environ)
    adapter = build_adapters(config)["slack"]
    assert isinstance(adapter, SlackAdapter)
    return adapter


def test_the_example_table_builds_the_adapter() -> None:
    adapter = _adapter_from(example_table("[adapters.slack]"), ENV)

    settings = adapter.settings
    assert settings.transport == "socket"
    assert settings.bot_token == Secret("xoxb-from-env")
    assert settings.app_token is not None
    assert settings.app_token.source == "SLACK_APP_TOKEN"
    assert settings.allowed_channels == ()
    assert settings.reply_in_threads == "mentions"
    assert "xoxb-from-env" not in repr(settings)


def test_a_token_can_come_from_another_variable() -> None:
    toml = '[adapters.slack]\ntransport = "http"\nbot_token_env = "OTHER_TOKEN"\n'

    adapter = _adapter_from(toml, {"OTHER_TOKEN": "xoxb-other", "SLACK_SIGNING_SECRET": "s"})

    assert adapter.settings.bot_token.reveal() == "xoxb-other"
    assert [r.path for r in adapter.web_routes()] == ["/slack/events"]


@pytest.mark.parametrize(
    ("toml", "environ", "key"),
    [
        ("[adapters.slack]\n", {"SLACK_BOT_TOKEN": "x"}, "adapters.slack.app_token"),
        (
            '[adapters.slack]\ntransport = "http"\n',
            {"SLACK_BOT_TOKEN": "x"},
            "adapters.slack.signing_secret",
        ),
        ("[adapters.slack]\n", {"SLACK_APP_TOKEN": "x"}, "adapters.slack.bot_token"),
        ('[adapters.slack]\nbot_token = "xoxb-in-file"\n', ENV, "adapters.slack.bot_token"),
        ('[adapters.slack]\nslash_command = "botkit"\n', ENV, "adapters.slack.slash_command"),
        ('[adapters.slack]\nreply_in_threads = "some"\n', ENV, "adapters.slack.reply_in_threads"),
        ('[adapters.slack]\nevents_path = "events"\n', ENV, "adapters.slack.events_path"),
    ],
)
def test_bad_settings_fail_at_start_naming_the_key(
    toml: str, environ: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _adapter_from(toml, environ)

    assert raised.value.key == key
    assert "xoxb-in-file" not in str(raised.value)


def test_socket_mode_mounts_no_routes() -> None:
    settings = SlackSettings(bot_token=Secret("x"), app_token=Secret("y"))

    assert SlackAdapter("slack", settings).web_routes() == ()


def _api_error(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> SlackApiError:
    response = AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/chat.postMessage",
        req_args={},
        data=body,
        headers=headers or {},
        status_code=status,
    )
    return SlackApiError("The request to the Slack API failed.", response)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (
            _api_error(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}),
            RateLimitError,
            "ratelimited",
        ),
        (
            _api_error(200, {"ok": False, "error": "invalid_auth"}),
            AuthenticationError,
            "invalid_auth",
        ),
        (_api_error(200, {"ok": False, "error": "not_authed"}), AuthenticationError, "not_authed"),
        (
            _api_error(200, {"ok": False, "error": "token_revoked"}),
            AuthenticationError,
            "token_revoked",
        ),
        (
            _api_error(200, {"ok": False, "error": "channel_not_found"}),
            RequestRejectedError,
            "channel_not_found",
        ),
        (
            _api_error(200, {"ok": False, "error": "not_in_channel"}),
            RequestRejectedError,
            "not_in_channel",
        ),
        (
            _api_error(200, {"ok": False, "error": "msg_too_long"}),
            RequestRejectedError,
            "msg_too_long",
        ),
        (
            _api_error(200, {"ok": False, "error": "internal_error"}),
            ServiceUnavailableError,
            "internal_error",
        ),
        (_api_error(502, {}), ServiceUnavailableError, None),
        (aiohttp.ClientConnectionError("connection reset"), ServiceUnavailableError, None),
        (TimeoutError(), ServiceUnavailableError, None),
    ],
)
def test_slack_errors_map_to_botkit_errors_in_one_place(
    exc: BaseException, kind: type[Exception], code: str | None
) -> None:
    error = service_error(exc, method="chat.postMessage")

    assert type(error) is kind
    assert error.service == "slack"
    assert error.code == code
    assert "chat.postMessage" in str(error)
    if isinstance(error, RateLimitError):
        assert error.retry_after == 7.0
        assert error.retryable
