"""``max_message_bytes``: a mail over it is never downloaded, is stored skipped with its
headers and the reason, and never reaches a handler; one at the limit is answered."""

from __future__ import annotations

import asyncio
import os
import re
from email.message import EmailMessage

import pytest

from botkit import Context, Message, Plugin, Reply
from botkit_email._intake import SKIPPED
from botkit_email._parse import parse_mail
from tests.adapters.email.conftest import RunBot, SettingsFactory
from tests.adapters.email.servers import Dovecot, MailAccount, SmtpCapture
from tests.adapters.email.support import deliver, inbound, make_mail, new_id, outbound, settle

LIMIT = 20_000


def _with_attachment(message_id: str, size: int) -> bytes:
    message = EmailMessage()
    message["From"] = "Ann Example <ann@example.org>"
    message["To"] = "bot@example.test"
    message["Subject"] = "Scan attached"
    message["Message-ID"] = message_id
    message.set_content("Please look at the scan.")
    message.add_attachment(
        os.urandom(size), maintype="application", subtype="pdf", filename="scan.pdf"
    )
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def _exactly(size: int, message_id: str) -> bytes:
    """A plain mail of exactly ``size`` bytes (CRLF line ends, as IMAP counts them)."""

    def mail(chars: int, subject: str) -> bytes:
        text = "x" * chars
        body = "\n".join(text[i : i + 60] for i in range(0, chars, 60))  # 7bit: short lines
        return make_mail(message_id=message_id, subject=subject, body=body)

    estimate = size - len(mail(0, "Opening hours"))
    for subject in ("Opening hours", "Opening hours!"):  # a line break adds 2 at once
        for chars in range(estimate * 60 // 62 - 60, estimate + 1):
            data = mail(chars, subject)
            if len(data) == size:
                return data
    raise AssertionError(f"no mail of {size} bytes")


def _sent_to_client(dovecot: Dovecot, user: str) -> int:
    """Bytes Dovecot's IMAP processes sent to ``user``'s finished sessions (their log)."""
    pattern = re.compile(rf"imap\({re.escape(user)}\).*? out=(\d+)")
    return sum(int(found) for found in pattern.findall(dovecot.log()))


async def test_a_mail_over_the_limit_is_stored_skipped_with_its_headers_and_not_read(
    account: MailAccount,
    dovecot: Dovecot,
    smtp: SmtpCapture,
    settings_for: SettingsFactory,
    run_bot: RunBot,
) -> None:
    handled: list[str] = []
    recorder = Plugin("recorder")

    @recorder.on_message()
    async def record(message: Message, ctx: Context) -> Reply:
        handled.append(message.external_id)
        return Reply("Noted.")

    big_id, small_id = new_id(), new_id()
    big = _with_attachment(big_id, 3 * LIMIT)
    small = _exactly(LIMIT, small_id)  # at the limit: read whole
    bot, adapter = await run_bot(settings_for(max_message_bytes=LIMIT), plugins=[recorder])
    await deliver(account, big)
    await deliver(account, small)
    await settle(bot, adapter)

    stored = {s.external_id: s for s in await inbound(bot)}
    too_large = stored[big_id]
    assert too_large.status == "skipped"
    reason = too_large.meta[SKIPPED]
    assert reason.startswith("too_large: ")
    assert f"{len(big):,} bytes" in reason
    assert f"max_message_bytes ({LIMIT:,})" in reason
    assert too_large.raw is not None
    assert too_large.raw["size"] == len(big)
    assert ["Subject", "Scan attached"] in too_large.raw["headers"]
    assert ["Message-ID", big_id] in too_large.raw["headers"]
    assert too_large.sender_id == "ann@example.org"
    assert stored[small_id].status == "done"
    assert handled == [small_id]  # the big one never reached a handler (nor the model)
    assert [status for status, _, _ in await outbound(bot)] == ["delivered"]
    assert [r.message["In-Reply-To"] for r in await smtp.wait_for(1)] == [small_id]

    await bot.stop()  # log out, so Dovecot logs what each session sent
    sent = _sent_to_client(dovecot, account.user)
    assert len(small) < sent < len(big)  # the big mail was never downloaded


async def test_a_mail_over_the_limit_is_recognised_when_seen_again(
    account: MailAccount, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    big_id = new_id()
    settings = settings_for(max_message_bytes=LIMIT, mailbox="Support")
    bot, adapter = await run_bot(settings, plugins=[])
    await deliver(account, _with_attachment(big_id, 2 * LIMIT), "Support")
    await settle(bot, adapter)
    await bot.stop()
    # The folder renumbered: the same mail, unread again, is the same stored mail.
    await asyncio.to_thread(account.recreate, "Support")
    await deliver(account, _with_attachment(big_id, 2 * LIMIT), "Support")
    bot, adapter = await run_bot(settings, plugins=[])
    await settle(bot, adapter)
    assert [(s.external_id, s.status) for s in await inbound(bot)] == [(big_id, "skipped")]


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 57, 58, 59, 1000, 4097])
def test_attachment_sizes_measured_from_their_base64_are_exact(size: int) -> None:
    mail = parse_mail(_with_attachment(new_id(), size))
    (attachment,) = mail.attachments
    assert attachment.size == size
