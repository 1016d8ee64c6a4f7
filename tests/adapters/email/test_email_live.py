"""End to end against real servers: Dovecot delivers, a real bot answers, aiosmtpd captures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

import pytest

from botkit_chat import plugin as chat_plugin
from botkit_email._intake import SKIPPED
from tests.adapters.email.conftest import RunBot, SettingsFactory
from tests.adapters.email.servers import Dovecot, MailAccount, SmtpCapture, free_port
from tests.adapters.email.support import (
    DATA,
    deliver,
    echo,
    inbound,
    make_mail,
    new_id,
    outbound,
    settle,
)


async def test_a_normal_mail_is_answered_once_in_its_thread(
    account: MailAccount,
    smtp: SmtpCapture,
    settings_for: SettingsFactory,
    run_bot: RunBot,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The real chat skill on the offline stand-in model, as `botkit run` would use it
    # (on SQLite, and on PostgreSQL too when BOTKIT_TEST_POSTGRES_URL is set).
    bot, adapter = await run_bot(settings_for(), plugins=[chat_plugin], database_url=database_url)
    root = new_id()
    question = new_id()
    await deliver(
        account,
        make_mail(
            subject="RE: Re: Opening hours",
            body="Is Saturday fine too?\n\nOn Mon, Bot <bot@example.test> wrote:\n> We open at 9.",
            message_id=question,
            headers={"In-Reply-To": root, "References": root},
        ),
    )
    await settle(bot, adapter)
    (sent,) = await smtp.wait_for(1)
    reply = sent.message
    assert sent.rcpt_tos == ["ann@example.org"]
    assert sent.mail_from == "bot@example.test"
    assert smtp.logins == ["bot-smtp"]
    assert reply["Subject"] == "Re: Opening hours"
    assert reply["In-Reply-To"] == question
    assert reply["References"] == f"{root} {question}"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert str(reply["Message-ID"]).endswith("@example.test>")
    body = reply.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "You said: Is Saturday fine too?" in text  # the model saw the new text only
    assert "You said: Is Saturday fine too?\n\n> We open" not in text

    (stored,) = await inbound(bot)
    assert stored.status == "done"
    assert stored.raw is not None
    assert "> We open at 9." in stored.raw["body"]
    assert await outbound(bot) == [("delivered", str(reply["Message-ID"]), None)]
    ((flags, _),) = await asyncio.to_thread(account.messages)
    assert "\\Seen" in flags

    # Checking again: `UID SEARCH UID n:*` names the last old mail, which is not fetched.
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="botkit_email"):
        await settle(bot, adapter)
    assert not [r for r in caplog.records if "fetching UID" in r.getMessage()]
    assert len(smtp.received) == 1


async def test_every_rfc3834_case_is_stored_but_never_answered(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    bot, adapter = await run_bot(settings_for(), plugins=[echo])
    automated = [
        (DATA / "09-bounce-postfix-mailer-daemon.eml").read_bytes(),
        (DATA / "14-auto-reply-auto-submitted.eml").read_bytes(),
        (DATA / "34-dsn-report-530.eml").read_bytes(),
        (DATA / "53-list-mail-precedence.eml").read_bytes(),
        make_mail(sender="a1@example.org", headers={"Auto-Submitted": "auto-generated"}),
        make_mail(sender="a2@example.org", headers={"Precedence": "bulk"}),
        make_mail(sender="a3@example.org", headers={"Precedence": "junk"}),
        make_mail(sender="a4@example.org", headers={"List-Id": "<users.example.org>"}),
        make_mail(sender="a5@example.org", headers={"List-Unsubscribe": "<mailto:u@x.org>"}),
        make_mail(sender="a6@example.org", headers={"Return-Path": "<>"}),
        make_mail(sender="a7@example.org", headers={"X-Auto-Response-Suppress": "All"}),
        make_mail(sender="MAILER-DAEMON@mx.example.org"),
        make_mail(sender="postmaster@example.org"),
        make_mail(sender="no-reply@shop.example.org"),
        make_mail(sender="Bot <bot@example.test>"),
    ]
    for raw in automated:
        await deliver(account, raw)
    await deliver(account, make_mail(sender="Person <person@example.org>"))
    await settle(bot, adapter)

    (sent,) = await smtp.wait_for(1)
    assert sent.rcpt_tos == ["person@example.org"]
    await asyncio.sleep(0.2)
    assert len(smtp.received) == 1
    stored = await inbound(bot)
    assert len(stored) == len(automated) + 1
    skipped = [s for s in stored if s.status == "skipped"]
    assert len(skipped) == len(automated)
    for row in skipped:
        assert row.meta[SKIPPED], row  # the reason is kept with the mail
    assert [s.status for s in stored if s.sender_id == "person@example.org"] == ["done"]


async def test_three_mails_from_one_sender_in_a_day_get_one_reply(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    bot, adapter = await run_bot(settings_for(), plugins=[echo])
    for subject in ("Question one", "Question two", "Question three"):
        await deliver(account, make_mail(subject=subject))
    await settle(bot, adapter)
    (sent,) = await smtp.wait_for(1)
    assert sent.message["Subject"] == "Re: Question one"
    await asyncio.sleep(0.2)
    assert len(smtp.received) == 1
    statuses = [(s.status, s.meta.get(SKIPPED, "")[:12]) for s in await inbound(bot)]
    assert statuses == [("done", ""), ("skipped", "rate_limited"), ("skipped", "rate_limited")]


async def test_replies_to_our_reply_stay_in_one_conversation(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    bot, adapter = await run_bot(settings_for(autoreply_period=0), plugins=[echo])
    first = new_id()
    await deliver(account, make_mail(subject="Booking", message_id=first))
    await settle(bot, adapter)
    (sent,) = await smtp.wait_for(1)
    ours = str(sent.message["Message-ID"])
    # A client that only sets In-Reply-To (no References) still lands in the thread.
    second = new_id()
    await deliver(
        account,
        make_mail(subject="Re: Booking", message_id=second, headers={"In-Reply-To": ours}),
    )
    await settle(bot, adapter)
    _, again = await smtp.wait_for(2)
    assert again.message["In-Reply-To"] == second
    assert again.message["References"] == f"{second}"
    assert again.message["Subject"] == "Re: Booking"
    rows = await inbound(bot)
    assert [r.status for r in rows] == ["done", "done"]
    assert rows[0].conversation_id == rows[1].conversation_id
    assert rows[1].meta["thread"] == first


async def test_uidvalidity_change_and_reconnects_answer_nothing_twice(
    account: MailAccount,
    smtp: SmtpCapture,
    settings_for: SettingsFactory,
    run_bot: RunBot,
    dovecot: Dovecot,
    database_url: str,
) -> None:
    settings = settings_for(mailbox="Support", autoreply_period=0, timeout=1.0)
    with_id = make_mail(sender="ann@example.org", subject="First")
    without_id = (
        b"From: Old Client <old@example.org>\r\nTo: bot@example.test\r\n"
        b"Subject: No Message-ID here\r\n\r\nPlease call me back.\r\n"
    )
    await deliver(account, with_id, "Support")
    await deliver(account, without_id, "Support")
    bot, adapter = await run_bot(settings, plugins=[echo], database_url=database_url)
    await settle(bot, adapter)
    await smtp.wait_for(2)

    # The folder is recreated (a server migration, a restore): every UID is new.
    before = await asyncio.to_thread(account.uidvalidity, "Support")
    await asyncio.to_thread(account.recreate, "Support")
    assert await asyncio.to_thread(account.uidvalidity, "Support") != before
    await deliver(account, with_id, "Support")
    await deliver(account, without_id, "Support")
    await deliver(account, make_mail(sender="new@example.org", subject="Fresh"), "Support")
    await settle(bot, adapter)
    received = await smtp.wait_for(3)
    assert received[2].rcpt_tos == ["new@example.org"]

    # The server drops the connection: the adapter reconnects and catches up by UID.
    for pid in dovecot.imap_pids(account.user):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    await deliver(account, make_mail(sender="later@example.org", subject="Later"), "Support")
    await settle(bot, adapter)
    received = await smtp.wait_for(4)
    assert received[3].rcpt_tos == ["later@example.org"]

    # A restart on the same store reads nothing again.
    await bot.stop()
    bot, adapter = await run_bot(settings, plugins=[echo], database_url=database_url)
    await settle(bot, adapter)
    await asyncio.sleep(0.2)
    assert len(smtp.received) == 4
    assert len(await inbound(bot)) == 4


async def test_a_silently_dead_connection_is_noticed_and_replaced(
    account: MailAccount,
    smtp: SmtpCapture,
    settings_for: SettingsFactory,
    run_bot: RunBot,
    dovecot: Dovecot,
) -> None:
    # IDLE is re-issued every 0.3 s here; each DONE must be answered within 0.5 s.
    settings = settings_for(idle_renew=0.3, timeout=0.5)
    bot, adapter = await run_bot(settings, plugins=[echo])
    await settle(bot, adapter)
    frozen = dovecot.imap_pids(account.user)
    for pid in frozen:  # the server stops answering, but the TCP connection stays up
        os.kill(pid, signal.SIGSTOP)
    try:
        await deliver(account, make_mail(subject="Still there?"))
        (sent,) = await smtp.wait_for(1, within=15)  # no poke: IDLE on a new connection
        assert sent.message["Subject"] == "Re: Still there?"
        assert len(dovecot.imap_pids(account.user)) > len(frozen)
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                os.kill(pid, signal.SIGCONT)


async def test_new_mail_is_noticed_by_idle_and_by_polling(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    bot, adapter = await run_bot(settings_for(), plugins=[echo])
    await settle(bot, adapter)
    await deliver(account, make_mail(sender="idle@example.org"))
    await smtp.wait_for(1)  # the server's IDLE push woke the adapter: nobody poked it
    await bot.stop()

    bot, adapter = await run_bot(settings_for(idle=False, poll_interval=0.1), plugins=[echo])
    await settle(bot, adapter)
    await deliver(account, make_mail(sender="poll@example.org"))
    received = await smtp.wait_for(2)
    assert received[1].rcpt_tos == ["poll@example.org"]


async def test_a_markdown_answer_gets_an_html_part(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    bot, adapter = await run_bot(settings_for(), plugins=[echo])
    await deliver(account, (DATA / "54-koi8-r-8bit-quoted.eml").read_bytes())
    await settle(bot, adapter)
    (sent,) = await smtp.wait_for(1)
    plain = sent.message.get_body(("plain",))
    html = sent.message.get_body(("html",))
    assert plain is not None
    assert html is not None
    # A new thread: the subject comes first, then the new text (the quote stripped).
    new_text = "Вопрос\n\nЗдравствуйте! Когда придёт заказ?"  # noqa: RUF001
    assert f"**Noted.** You wrote: {new_text}\n" in plain.get_content()
    assert "<strong>Noted.</strong>" in html.get_content()
    assert sent.message["Subject"] == "Re: Вопрос"
    assert sent.rcpt_tos == ["nikolai@example.ru"]


async def test_an_unreachable_server_is_retried_with_growing_pauses(
    settings_for: SettingsFactory, run_bot: RunBot, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(imap_port=free_port(), reconnect_min=0.05, reconnect_max=0.4)
    _, adapter = await run_bot(settings, plugins=[echo])  # starts anyway
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(adapter.sync_now(), 0.2)  # a poke must not cause a busy loop

    def attempts() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "reconnecting in" in r.getMessage()]

    await asyncio.sleep(1.5)
    # no busy loop: pauses of 0.05 + 0.1 + 0.2 + 0.4... leave room for about six tries in
    # 1.5 s (an upper bound: a loaded machine only makes fewer)
    assert len(attempts()) <= 9
    async with asyncio.timeout(30):  # retried: wait for four tries, however slow they are
        while len(attempts()) < 4:  # noqa: ASYNC110 - log records come with no event
            await asyncio.sleep(0.05)
    # growing pauses, read from what was announced rather than from how many fit in a time
    pauses = [
        float(r.getMessage().rsplit("reconnecting in ", 1)[1].split()[0]) for r in attempts()
    ]
    assert pauses[:4] == [0.05, 0.1, 0.2, 0.4]
    assert max(pauses) == 0.4  # reconnect_max
    assert all(r.levelno == logging.WARNING for r in attempts())
