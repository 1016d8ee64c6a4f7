"""TLS (implicit, STARTTLS that fails closed) and passwords that never leak."""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path

import pytest

from botkit import AuthenticationError, RequestRejectedError, Secret
from botkit_email import EmailAdapter
from botkit_email._errors import Redactor
from botkit_email._imap import ImapSession
from tests.adapters.email.conftest import RunBot, SettingsFactory
from tests.adapters.email.servers import Dovecot, MailAccount, SmtpCapture
from tests.adapters.email.support import deliver, echo, inbound, make_mail, outbound, settle

IMAP_SECRET = 'Imap"pa\\ss-Q7z'
SMTP_SECRET = "Smtp-s3cr3t-K9w"


def _leaks(text: str, *secrets: str) -> list[str]:
    found = []
    for secret in secrets:
        for form in (secret, base64.b64encode(secret.encode()).decode()):
            if form in text:
                found.append(form)
    return found


async def _wait_until(condition: object, within: float = 5.0) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_passwords_never_appear_in_logs_or_errors(
    dovecot: Dovecot,
    smtp: SmtpCapture,
    settings_for: SettingsFactory,
    run_bot: RunBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    account = dovecot.add_account(IMAP_SECRET)
    settings = settings_for(
        imap_port=account.port,
        user=account.user,
        password=Secret(IMAP_SECRET, source="BOTKIT_EMAIL_PASSWORD"),
        smtp_password=Secret(SMTP_SECRET, source="BOTKIT_EMAIL_SMTP_PASSWORD"),
    )
    # The SMTP server expects another password: the answer fails to authenticate.
    smtp.password = "the-right-one"
    bot, adapter = await run_bot(settings, plugins=[echo])
    await deliver(account, make_mail())
    await settle(bot, adapter)
    ((status, _, error),) = await outbound(bot)
    assert status == "failed"
    assert error is not None
    assert "login refused" in error
    assert not _leaks(error, IMAP_SECRET, SMTP_SECRET)
    await bot.stop()

    # A wrong IMAP password: the login is refused, retried with backoff, and logged.
    wrong = 'Wr0ng"imap\\pw-X1'
    bad = EmailAdapter("bad", settings_for(password=Secret(wrong)))
    redactor = Redactor([wrong])
    with pytest.raises(AuthenticationError) as refused:
        await ImapSession.open(bad.settings, redactor)
    assert not _leaks(str(refused.value), wrong)
    assert refused.value.__cause__ is None  # the vendor's exception may quote LOGIN
    bot, adapter = await run_bot(bad.settings, plugins=[echo], name="bad")
    await _wait_until(
        lambda: "login refused" in caplog.text or "AUTHENTICATIONFAILED" in caplog.text
    )

    ours = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records if r.name != "mail.log"
    )
    assert "LOGIN" in ours  # the libraries' debug output was captured...
    assert not _leaks(ours, IMAP_SECRET, SMTP_SECRET, wrong)  # ...and scrubbed
    assert "Wr0ng" not in ours


async def test_imap_starttls_fails_closed_when_not_offered(
    account: MailAccount,
    dovecot: Dovecot,
    settings_for: SettingsFactory,
    run_bot: RunBot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot, _ = await run_bot(settings_for(imap_tls="starttls"), plugins=[echo])
    await deliver(account, make_mail())
    await _wait_until(lambda: "does not offer STARTTLS" in caplog.text)
    # The adapter never logged in: the only login is the test's own APPEND.
    adapter_logins = [
        line
        for line in dovecot.log().splitlines()
        if f"user=<{account.user}>" in line and "Login:" in line
    ]
    assert len(adapter_logins) == 1  # deliver()'s
    assert await inbound(bot) == []


async def test_smtp_starttls_fails_closed_when_not_offered(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    bot, adapter = await run_bot(settings_for(smtp_tls="starttls"), plugins=[echo])
    await deliver(account, make_mail())
    await settle(bot, adapter)
    ((status, _, error),) = await outbound(bot)
    assert status == "failed"
    assert error is not None
    assert "STARTTLS" in error
    assert smtp.received == []
    assert smtp.logins == []


async def test_implicit_tls_and_starttls_with_a_trusted_certificate(
    tls_dovecot: tuple[Dovecot, tuple[Path, Path]],
    tls_smtp: SmtpCapture,
    settings_for: SettingsFactory,
    run_bot: RunBot,
) -> None:
    server, (certificate, _) = tls_dovecot
    account = server.add_account()
    common = {
        "user": account.user,
        "password": Secret(account.password),
        "smtp_port": tls_smtp.port,
        "smtp_tls": "starttls",
        "tls_ca_file": str(certificate),
    }
    assert server.imaps_port is not None
    for name, imap in (("ssl", server.imaps_port), ("starttls", server.port)):
        settings = settings_for(imap_port=imap, imap_tls=name, **common)
        bot, adapter = await run_bot(settings, plugins=[echo], name=f"tls-{name}")
        await deliver(account, make_mail(sender=f"{name}@example.org"), f"Box-{name}")
        await deliver(account, make_mail(sender=f"{name}@example.org"))
        await settle(bot, adapter)
        await bot.stop()
    received = await tls_smtp.wait_for(2)
    assert sorted(r.rcpt_tos[0] for r in received) == ["ssl@example.org", "starttls@example.org"]
    assert tls_smtp.logins == ["bot-smtp", "bot-smtp"]


async def test_an_untrusted_certificate_is_refused(
    tls_dovecot: tuple[Dovecot, tuple[Path, Path]], settings_for: SettingsFactory
) -> None:
    server, _ = tls_dovecot
    account = server.add_account()
    assert server.imaps_port is not None
    settings = settings_for(
        imap_port=server.imaps_port,
        imap_tls="ssl",
        user=account.user,
        password=Secret(account.password),
    )
    with pytest.raises(RequestRejectedError) as refused:
        await ImapSession.open(settings, Redactor([account.password]))
    assert refused.value.code == "tls"
    assert refused.value.service == "imap"
