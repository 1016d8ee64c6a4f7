"""``[adapters.email]``: parsed from TOML with the password from the environment, checked."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from botkit import (
    AuthenticationError,
    ConfigError,
    ConfigErrors,
    RequestRejectedError,
    Secret,
    ServiceUnavailableError,
)
from botkit.bot import build_adapters
from botkit.config import parse_config
from botkit_email import EmailAdapter, EmailSettings
from botkit_email._errors import Redactor, imap_error, smtp_error

BASE = {
    "use": "botkit_email:EmailAdapter",
    "address": "support@example.com",
    "imap_host": "imap.example.com",
    "smtp_host": "smtp.example.com",
}


def build(table: dict[str, Any], environ: dict[str, str] | None = None) -> EmailAdapter:
    config = parse_config(
        {"adapters": {"email": table}},
        environ=environ if environ is not None else {"BOTKIT_EMAIL_PASSWORD": "pw-from-env"},
    )
    (adapter,) = build_adapters(config).values()
    assert isinstance(adapter, EmailAdapter)
    return adapter


def test_settings_come_from_toml_and_the_password_from_the_environment() -> None:
    adapter = build(dict(BASE))
    settings = adapter.settings
    assert settings.password == Secret("pw-from-env")
    assert settings.login == "support@example.com"
    assert settings.imap_port_or_default == 993
    assert settings.imap_tls == "ssl"
    assert settings.smtp_port_or_default == 587
    assert settings.smtp_tls == "starttls"
    assert settings.smtp_secret == Secret("pw-from-env")
    assert settings.autoreply_period == 86400
    assert settings.mode == "reply"
    assert "pw-from-env" not in repr(settings)


def test_password_env_names_another_variable() -> None:
    adapter = build(
        {**BASE, "password_env": "MAILBOX_PW", "smtp_password_env": "RELAY_PW"},
        {"MAILBOX_PW": "a", "RELAY_PW": "b"},
    )
    assert adapter.settings.password == Secret("a")
    assert adapter.settings.smtp_secret == Secret("b")


@pytest.mark.parametrize(
    ("table", "environ", "key"),
    [
        (BASE, {}, "adapters.email.password"),
        ({**BASE, "password": "in-the-file"}, None, "adapters.email.password"),
        ({**BASE, "mode": "shout"}, None, "adapters.email.mode"),
        ({**BASE, "mode": "notify"}, None, "adapters.email.notify_to"),
        ({**BASE, "address": "not an address"}, None, "adapters.email.address"),
        ({**BASE, "imap_port": 70000}, None, "adapters.email.imap_port"),
        ({**BASE, "idle_renew": 1800}, None, "adapters.email.idle_renew"),
        ({**BASE, "after_accept": "flag", "flag": "bad flag"}, None, "adapters.email.flag"),
        ({**BASE, "after_accept": "move", "move_to": "INBOX"}, None, "adapters.email.move_to"),
        ({**BASE, "autoreply_period": -1}, None, "adapters.email.autoreply_period"),
        ({**BASE, "imap_tls": "maybe"}, None, "adapters.email.imap_tls"),
        ({**BASE, "unknown": 1}, None, "adapters.email.unknown"),
        ({**BASE, "auth": "oauth2"}, {}, "adapters.email.access_token"),
        ({**BASE, "auth": "oauth2", "access_token": "x"}, {}, "adapters.email.access_token"),
        ({**BASE, "auth": "kerberos"}, None, "adapters.email.auth"),
        ({**BASE, "token_command": ["true"]}, None, "adapters.email.token_command"),
        (
            {**BASE, "auth": "oauth2", "token_command": ["true"]},
            {"BOTKIT_EMAIL_ACCESS_TOKEN": "t0ken"},
            "adapters.email.token_command",
        ),
        (
            {**BASE, "auth": "oauth2", "token_command": ["/no/such/program"]},
            {},
            "adapters.email.token_command",
        ),
        ({**BASE, "auth": "oauth2", "token_command": [""]}, {}, "adapters.email.token_command"),
        ({**BASE, "auth": "oauth2", "token_command": "true"}, {}, "adapters.email.token_command"),
        ({**BASE, "max_message_bytes": 0}, None, "adapters.email.max_message_bytes"),
    ],
)
def test_bad_settings_name_the_key(
    table: dict[str, Any], environ: dict[str, str] | None, key: str
) -> None:
    with pytest.raises(ConfigError) as error:
        build(dict(table), environ)
    assert error.value.key == key


def test_oauth2_needs_no_password_and_takes_the_token_from_the_environment() -> None:
    adapter = build(
        {**BASE, "auth": "oauth2", "access_token_env": "M365_TOKEN"}, {"M365_TOKEN": "eyJ0"}
    )
    settings = adapter.settings
    assert settings.password is None
    assert settings.access_token is not None
    assert settings.access_token.reveal() == "eyJ0"
    assert settings.smtp_secret is None  # SMTP logs in with the token too
    assert "eyJ0" not in repr(settings)
    by_command = build({**BASE, "auth": "oauth2", "token_command": ["true", "--x"]}, {})
    assert by_command.settings.token_command == ("true", "--x")
    assert by_command.settings.access_token is None


def test_oauth2_without_a_token_says_where_to_put_one() -> None:
    with pytest.raises(ConfigError) as error:
        build({**BASE, "auth": "oauth2"}, {"BOTKIT_EMAIL_PASSWORD": "pw"})
    assert error.value.key == "adapters.email.access_token"
    assert "BOTKIT_EMAIL_ACCESS_TOKEN" in str(error.value)
    assert "token_command" in str(error.value)


def test_the_default_size_limit_is_ten_megabytes() -> None:
    assert build(dict(BASE)).settings.max_message_bytes == 10_000_000


def test_every_bad_setting_of_the_table_is_reported_at_once() -> None:
    with pytest.raises(ConfigErrors) as error:
        build({**BASE, "address": "nobody", "imap_port": 0, "autoreply_period": -1})
    assert [e.key for e in error.value.errors] == [
        "adapters.email.address",
        "adapters.email.imap_port",
        "adapters.email.autoreply_period",
    ]


def test_redactor_scrubs_every_form_of_a_secret() -> None:
    redactor = Redactor(['pa"ss\\word'])
    assert redactor.scrub('LOGIN u "pa\\"ss\\\\word"') == 'LOGIN u "***"'
    assert redactor.scrub(repr(b'LOGIN u "pa\\"ss\\\\word"')) == "b'LOGIN u \"***\"'"
    assert redactor.scrub('raw pa"ss\\word here') == "raw *** here"
    encoded = base64.b64encode(b'pa"ss\\word').decode()
    assert encoded not in redactor.scrub(f"AUTH PLAIN {encoded}")


def test_redactor_learns_tokens_and_keeps_only_the_last_few() -> None:
    redactor = Redactor(["static-pw"])
    tokens = [f"token-{n:02d}-abcdef" for n in range(20)]
    for token in tokens:
        redactor.add(token)
    assert redactor.scrub(f"{tokens[-1]} static-pw") == "*** ***"
    encoded = base64.b64encode(tokens[-1].encode()).decode()
    assert redactor.scrub(encoded) == "***"
    assert redactor.scrub(tokens[0]) == tokens[0]  # long replaced; the list stays bounded
    redactor.add("ab")  # too short to scrub without mangling everything
    assert redactor.scrub("abc ab") == "abc ab"


def test_vendor_errors_map_to_botkit_errors_without_secrets() -> None:
    import aiosmtplib

    redactor = Redactor(["hunter22"])
    auth = smtp_error(aiosmtplib.SMTPAuthenticationError(535, "bad hunter22"), "x", redactor)
    assert isinstance(auth, AuthenticationError)
    assert "hunter22" not in str(auth)
    assert auth.service == "smtp"
    assert not auth.retryable
    busy = smtp_error(aiosmtplib.SMTPResponseException(451, "try later"), "x", redactor)
    assert isinstance(busy, ServiceUnavailableError)
    assert busy.retryable
    refused = smtp_error(aiosmtplib.SMTPResponseException(554, "spam"), "x", redactor)
    assert isinstance(refused, RequestRejectedError)
    down = smtp_error(aiosmtplib.SMTPConnectError("refused"), "x", redactor)
    assert isinstance(down, ServiceUnavailableError)
    timeout = imap_error(TimeoutError(), "reading", redactor)
    assert isinstance(timeout, ServiceUnavailableError)
    assert timeout.service == "imap"
    network = imap_error(ConnectionRefusedError(111, "Connection refused"), "x", redactor)
    assert isinstance(network, ServiceUnavailableError)


def test_settings_can_be_built_in_code() -> None:
    settings = EmailSettings(
        address="a@example.com", imap_host="h", smtp_host="h", password=Secret("p")
    )
    assert settings.own_addresses == frozenset({"a@example.com"})
    assert settings.id_domain == "example.com"


def test_the_documented_example_table_builds_the_adapter() -> None:
    import tomllib

    from tests.fakes.example_config import example_table

    table = tomllib.loads(example_table("[adapters.email]"))["adapters"]["email"]
    adapter = build(table)
    assert adapter.settings.address == "support@example.com"
    assert adapter.settings.mode == "reply"
    assert adapter.settings.after_accept == "seen"


def test_the_documented_example_table_names_every_setting() -> None:
    import dataclasses
    import typing

    from tests.fakes.example_config import example_table

    text = example_table("[adapters.email]")
    hints = typing.get_type_hints(EmailSettings)
    for f in dataclasses.fields(EmailSettings):
        secret = Secret in (hints[f.name], *typing.get_args(hints[f.name]))
        key = f"{f.name}_env" if secret else f.name
        assert f"\n{key} =" in text or f"\n#: {key} =" in text, f"adapters.email.{key}"
