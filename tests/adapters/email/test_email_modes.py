"""Modes (reply, draft, notify), what happens to mail on the server, and send's own refusals."""

from __future__ import annotations

import asyncio

import pytest

from botkit import ConversationRef, Reply, RequestRejectedError
from tests.adapters.email.conftest import RunBot, SettingsFactory
from tests.adapters.email.servers import MailAccount, SmtpCapture
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


async def test_draft_mode_saves_the_reply_in_drafts_and_sends_nothing(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    bot, adapter = await run_bot(settings_for(mode="draft"), plugins=[echo])
    question = new_id()
    await deliver(account, make_mail(subject="Refund", message_id=question))
    await settle(bot, adapter)
    ((flags, draft),) = await asyncio.to_thread(account.messages, "Drafts")
    assert "\\Draft" in flags
    assert draft["To"] == "ann@example.org"
    assert draft["In-Reply-To"] == question
    assert draft["Subject"] == "Re: Refund"
    body = draft.get_body(("plain",))
    assert body is not None
    assert "You wrote: Refund" in body.get_content()
    assert smtp.received == []
    assert [status for status, _, _ in await outbound(bot)] == ["delivered"]


async def test_notify_mode_mails_a_summary_to_the_owner_not_the_sender(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    settings = settings_for(mode="notify", notify_to="owner@example.org")
    bot, adapter = await run_bot(settings, plugins=[echo])
    await deliver(account, make_mail(subject="Complaint"))
    await settle(bot, adapter)
    (sent,) = await smtp.wait_for(1)
    assert sent.rcpt_tos == ["owner@example.org"]
    assert sent.message["Auto-Submitted"] == "auto-generated"
    assert "Complaint" in str(sent.message["Subject"])
    body = sent.message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "ann@example.org" in text
    assert "You wrote: Complaint" in text


async def test_after_accept_move_and_flag(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    bot, adapter = await run_bot(settings_for(after_accept="move", move_to="Done"), plugins=[echo])
    await deliver(account, make_mail(sender="m@example.org"))
    await settle(bot, adapter)
    assert await asyncio.to_thread(account.messages, "INBOX") == []
    assert len(await asyncio.to_thread(account.messages, "Done")) == 1
    await bot.stop()

    bot, adapter = await run_bot(
        settings_for(after_accept="flag", flag="$Answered_by_bot", mailbox="Flagged"),
        plugins=[echo],
    )
    await deliver(account, make_mail(sender="f@example.org"), "Flagged")
    await settle(bot, adapter)
    ((flags, _),) = await asyncio.to_thread(account.messages, "Flagged")
    assert "$Answered_by_bot" in flags
    assert "\\Seen" not in flags
    assert len(await smtp.wait_for(2)) == 2


async def test_first_start_reads_only_unhandled_mail_or_only_new_mail(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    await deliver(account, make_mail(sender="read@example.org"), flags="\\Seen")
    await deliver(account, make_mail(sender="unread@example.org"))
    bot, adapter = await run_bot(settings_for(), plugins=[echo])
    await settle(bot, adapter)
    (sent,) = await smtp.wait_for(1)
    assert sent.rcpt_tos == ["unread@example.org"]
    await bot.stop()

    await deliver(account, make_mail(sender="old@example.org"), "Other")
    bot, adapter = await run_bot(
        settings_for(mailbox="Other", initial_sync="new"), plugins=[echo], name="other"
    )
    await settle(bot, adapter)
    await deliver(account, make_mail(sender="fresh@example.org"), "Other")
    await settle(bot, adapter)
    received = await smtp.wait_for(2)
    assert received[1].rcpt_tos == ["fresh@example.org"]
    await asyncio.sleep(0.2)
    assert len(smtp.received) == 2


async def test_skipped_mail_is_stored_with_its_reason_and_send_refuses_it_anyway(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    bot, adapter = await run_bot(settings_for(), plugins=[echo])
    await deliver(account, (DATA / "09-bounce-postfix-mailer-daemon.eml").read_bytes())
    await settle(bot, adapter)
    assert smtp.received == []
    assert await outbound(bot) == []  # never reached a handler
    (stored,) = await bot.store.history.messages([1])
    assert stored.direction == "in"
    assert stored.status == "skipped"
    assert stored.error is not None
    assert stored.error.startswith("auto_submitted")
    assert stored.meta["autoreply_skipped"] == stored.error
    # and should anything try to answer it all the same, the adapter refuses
    with pytest.raises(RequestRejectedError, match="not answering"):
        await adapter.send(
            stored.conversation, Reply("hello", reply_to=stored.external_id), delivery_id="x-1"
        )


async def test_one_answer_per_mail_and_a_resend_keeps_its_message_id(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    bot, adapter = await run_bot(settings_for(), plugins=[echo])
    question = new_id()
    await deliver(account, make_mail(message_id=question))
    await settle(bot, adapter)
    (first,) = await smtp.wait_for(1)
    (stored,) = await inbound(bot)
    conversation = ConversationRef("email", "bot@example.test", question)
    ((_, delivered_id, _),) = await outbound(bot)
    state = bot.store.state("adapter:email")
    delivery = (await state.get(f"mail:{question}"))["answered_by"]

    # The outbox retries the same entry (a crash after SMTP accepted it): not sent again.
    sent = await adapter.send(
        conversation, Reply("again", reply_to=question), delivery_id=delivery
    )
    assert sent.external_id == delivered_id
    assert len(smtp.received) == 1

    # A second, different answer to the same mail is refused.
    with pytest.raises(RequestRejectedError) as refused:
        await adapter.send(conversation, Reply("more", reply_to=question), delivery_id="botkit-77")
    assert refused.value.code == "already_answered"

    # An attempt interrupted mid-send is sent again with the same Message-ID.
    other = new_id()
    await deliver(account, make_mail(sender="bob@example.org", message_id=other))
    await settle(bot, adapter)
    (_, second) = await smtp.wait_for(2)
    delivery = (await state.get(f"mail:{other}"))["answered_by"]
    await state.set(f"delivery:{delivery}", {"status": "sending", "message_id": "x"})
    resent = await adapter.send(
        ConversationRef("email", "bot@example.test", other),
        Reply("once more", reply_to=other),
        delivery_id=delivery,
    )
    third = (await smtp.wait_for(3))[2]
    assert third.message["Message-ID"] == second.message["Message-ID"] == resent.external_id
    assert stored.status == "done"
    assert first.message["Message-ID"] != second.message["Message-ID"]


async def test_a_temporary_smtp_failure_is_retried_with_the_same_message_id(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    smtp.refuse_next = 1
    bot, adapter = await run_bot(settings_for(), plugins=[echo])
    question = new_id()
    await deliver(account, make_mail(message_id=question))
    await settle(bot, adapter)
    (sent,) = await smtp.wait_for(1, within=10)
    state = bot.store.state("adapter:email")
    delivery = (await state.get(f"mail:{question}"))["answered_by"]
    assert await state.get(f"delivery:{delivery}") == {
        "status": "sent",
        "message_id": sent.message["Message-ID"],
    }
    await asyncio.sleep(0.1)
    assert [status for status, _, _ in await outbound(bot)] == ["delivered"]
