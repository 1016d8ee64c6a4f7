"""``auth = "oauth2"``: XOAUTH2 against Dovecot checking bearer tokens (RFC 7662
introspection) and against aiosmtpd, with tokens from the environment or a command."""

from __future__ import annotations

import asyncio
import base64
import logging
import sys
import uuid
from pathlib import Path

import pytest

from botkit import AuthenticationError, Secret, ServiceUnavailableError
from botkit_email._errors import Redactor
from botkit_email._imap import ImapSession
from botkit_email._oauth import AccessTokens, xoauth2_response
from botkit_email.settings import EmailSettings
from tests.adapters.email.conftest import SMTP_USER, RunBot, SettingsFactory
from tests.adapters.email.servers import Dovecot, MailAccount, SmtpCapture, TokenIntrospection
from tests.adapters.email.support import deliver, echo, make_mail, outbound, settle

OAuth2Dovecot = tuple[Dovecot, TokenIntrospection]


def _token() -> str:
    return f"ya29.{uuid.uuid4().hex}{uuid.uuid4().hex}"


def _leaks(text: str, token: str, user: str) -> list[str]:
    forms = [token, base64.b64encode(token.encode()).decode(), xoauth2_response(user, token)]
    return [form for form in forms if form in text]


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)


def _token_script(tmp_path: Path, body: str) -> tuple[str, ...]:
    """A ``token_command`` running ``body`` (Python, with ``count``: the how-many-th run)."""
    script = tmp_path / f"token-{uuid.uuid4().hex[:6]}.py"
    counter = tmp_path / f"{script.stem}.count"
    script.write_text(
        "import pathlib, sys\n"
        f"counter = pathlib.Path({str(counter)!r})\n"
        "count = int(counter.read_text()) + 1 if counter.exists() else 1\n"
        "counter.write_text(str(count))\n" + body
    )
    return (sys.executable, str(script))


def _runs(command: tuple[str, ...]) -> int:
    counter = Path(command[1]).with_suffix(".count")
    return int(counter.read_text()) if counter.exists() else 0


@pytest.fixture
def oauth2_account(oauth2_dovecot: OAuth2Dovecot) -> MailAccount:
    return oauth2_dovecot[0].add_account()


@pytest.fixture
def oauth2_settings(oauth2_account: MailAccount, settings_for: SettingsFactory) -> SettingsFactory:
    def make(**overrides: object) -> EmailSettings:
        values: dict[str, object] = {
            "auth": "oauth2",
            "imap_port": oauth2_account.port,
            "user": oauth2_account.user,
            "password": None,
            "smtp_password": None,
        }
        values.update(overrides)
        return settings_for(**values)

    return make


async def test_an_access_token_from_the_environment_logs_in_to_imap_and_smtp(
    oauth2_dovecot: OAuth2Dovecot,
    oauth2_account: MailAccount,
    oauth2_settings: SettingsFactory,
    smtp: SmtpCapture,
    run_bot: RunBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server, introspection = oauth2_dovecot
    token = _token()
    introspection.tokens[token] = oauth2_account.user
    smtp.tokens[token] = SMTP_USER
    settings = oauth2_settings(access_token=Secret(token, source="BOTKIT_EMAIL_ACCESS_TOKEN"))
    bot, adapter = await run_bot(settings, plugins=[echo])
    await deliver(oauth2_account, make_mail())
    await settle(bot, adapter)

    (sent,) = await smtp.wait_for(1)
    assert sent.rcpt_tos == ["ann@example.org"]
    assert smtp.logins == [SMTP_USER]  # logged in with XOAUTH2, no password
    assert smtp.xoauth2_tokens == [token]
    assert token in introspection.asked
    assert f"user=<{oauth2_account.user}>, method=XOAUTH2" in server.log()
    assert not _leaks(_logged(caplog), token, oauth2_account.user)


async def test_a_refused_token_is_a_clear_error_that_never_shows_the_token(
    oauth2_dovecot: OAuth2Dovecot,
    oauth2_account: MailAccount,
    oauth2_settings: SettingsFactory,
    smtp: SmtpCapture,
    run_bot: RunBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _, introspection = oauth2_dovecot
    token = _token()  # granted nowhere: expired, revoked
    settings = oauth2_settings(access_token=Secret(token, source="BOTKIT_EMAIL_ACCESS_TOKEN"))

    started = asyncio.get_running_loop().time()
    with pytest.raises(AuthenticationError) as refused:
        await ImapSession.open(settings, Redactor([token]), AccessTokens(settings, Redactor([])))
    # The server's error challenge was answered: a NO at once, not a timeout.
    assert asyncio.get_running_loop().time() - started < settings.timeout
    error = refused.value
    assert error.service == "imap"
    assert error.code == "auth"
    assert "OAuth2 access token" in str(error)
    assert "AUTHENTICATIONFAILED" in str(error)
    assert "from BOTKIT_EMAIL_ACCESS_TOKEN cannot be renewed" in str(error)
    assert error.__cause__ is None
    assert not _leaks(str(error), token, oauth2_account.user)
    assert introspection.asked.count(token) == 1  # an environment token is not retried

    # A bot with it: IMAP keeps retrying (logged), SMTP refuses the answer, no token shown.
    introspection.tokens[token] = oauth2_account.user  # IMAP takes it, SMTP still refuses
    bot, adapter = await run_bot(settings, plugins=[echo])
    await deliver(oauth2_account, make_mail())
    await settle(bot, adapter)
    ((status, _, failure),) = await outbound(bot)
    assert status == "failed"
    assert failure is not None
    assert "login refused: 535" in failure
    assert not _leaks(failure, token, oauth2_account.user)
    assert smtp.received == []
    assert smtp.xoauth2_tokens == [token]
    logged = _logged(caplog)
    assert "AUTHENTICATE" in logged  # aioimaplib's debug output was captured...
    assert not _leaks(logged, token, oauth2_account.user)  # ...and scrubbed


async def test_token_command_output_is_used_and_run_again_once_when_refused(
    oauth2_dovecot: OAuth2Dovecot,
    oauth2_account: MailAccount,
    oauth2_settings: SettingsFactory,
    smtp: SmtpCapture,
    run_bot: RunBot,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _, introspection = oauth2_dovecot
    prefix = _token()
    command = _token_script(tmp_path, f"print({prefix!r} + '-' + str(count))\n")
    first, second, third = (f"{prefix}-{n}" for n in (1, 2, 3))
    # The first token has expired by the time IMAP uses it; the second works.
    introspection.tokens[second] = oauth2_account.user
    smtp.tokens[second] = SMTP_USER
    settings = oauth2_settings(token_command=command)
    bot, adapter = await run_bot(settings, plugins=[echo])
    await deliver(oauth2_account, make_mail())
    await settle(bot, adapter)
    await smtp.wait_for(1)
    assert [t for t in introspection.asked if t.startswith(prefix)] == [first, second]
    assert smtp.xoauth2_tokens == [second]  # SMTP used the renewed token as it was
    assert _runs(command) == 2

    # SMTP refuses it later (expired): renewed once more, and the answer goes out.
    del smtp.tokens[second]
    smtp.tokens[third] = SMTP_USER
    await deliver(oauth2_account, make_mail(sender="bob@example.org"))
    await settle(bot, adapter)
    await smtp.wait_for(2)
    assert smtp.xoauth2_tokens == [second, second, third]
    assert _runs(command) == 3
    assert [status for status, _, _ in await outbound(bot)] == ["delivered", "delivered"]
    logged = _logged(caplog)
    for token in (first, second, third):
        assert not _leaks(logged, token, oauth2_account.user)


async def test_token_command_runs_at_most_twice_for_one_login(
    oauth2_settings: SettingsFactory, oauth2_account: MailAccount, tmp_path: Path
) -> None:
    prefix = _token()
    command = _token_script(tmp_path, f"print({prefix!r} + '-' + str(count))\n")
    settings = oauth2_settings(token_command=command)
    tokens = AccessTokens(settings, Redactor([]))
    with pytest.raises(AuthenticationError) as refused:
        await ImapSession.open(settings, Redactor([]), tokens)
    assert _runs(command) == 2  # the token, and one renewal: never a loop
    assert prefix not in str(refused.value)
    assert "AUTHENTICATIONFAILED" in str(refused.value)


async def test_a_command_that_prints_the_refused_token_again_is_not_retried(
    oauth2_dovecot: OAuth2Dovecot, oauth2_settings: SettingsFactory, tmp_path: Path
) -> None:
    token = _token()
    command = _token_script(tmp_path, f"print({token!r})\n")
    settings = oauth2_settings(token_command=command)
    with pytest.raises(AuthenticationError) as refused:
        await ImapSession.open(settings, Redactor([]), AccessTokens(settings, Redactor([])))
    assert _runs(command) == 2
    assert oauth2_dovecot[1].asked.count(token) == 1  # the same token is not tried twice
    assert "printed the refused token again" in str(refused.value)
    assert token not in str(refused.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "print('secret-token-printed', file=sys.stderr)\n"
            "print('secret-token-printed')\nsys.exit(3)\n",
            "exited with status 3",
        ),
        ("print('')\n", "printed no access token"),
        ("print('secret-token-printed\\nand more')\n", "printed no access token"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "killed by signal 9"),
        ("import time\nprint('secret-token-printed', flush=True)\ntime.sleep(30)\n", "did not"),
    ],
)
async def test_a_failing_token_command_is_a_clear_error_naming_only_its_status(
    oauth2_settings: SettingsFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    body: str,
    expected: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    command = _token_script(tmp_path, body)
    settings = oauth2_settings(token_command=command, timeout=1.0)
    with pytest.raises(ServiceUnavailableError) as failed:
        await ImapSession.open(settings, Redactor([]), AccessTokens(settings, Redactor([])))
    error = failed.value
    assert error.code == "token_command"
    assert error.service == "imap"
    assert error.retryable  # a refresh endpoint that is down comes back
    assert str(error).startswith(f"imap: token_command ({Path(sys.executable).name}) ")
    assert expected in str(error)
    assert command[1] not in str(error)  # arguments may hold a client secret
    assert "secret-token" not in str(error)
    assert "secret-token" not in _logged(caplog)
