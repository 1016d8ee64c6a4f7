"""A PDF attached to a mail, read from the real Dovecot only when the documents plugin
asks, and summarised in the reply (here by the offline stand-in, which shows how the
document begins)."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage

from botkit_chat import plugin as chat
from botkit_documents import plugin as documents
from botkit_documents.plugin import STAND_IN_NOTE
from tests.adapters.email.conftest import RunBot, SettingsFactory
from tests.adapters.email.servers import MailAccount, SmtpCapture
from tests.adapters.email.support import deliver, new_id, settle
from tests.fakes.pdfs import text_pdf


def _mail(subject: str, body: str, message_id: str) -> EmailMessage:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = "Ann Example <ann@example.org>"
    message["To"] = "bot@example.test"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content(body)
    return message


async def test_an_attached_pdf_is_summarised_in_the_reply(
    account: MailAccount, smtp: SmtpCapture, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    pdf = text_pdf(
        [["Offsite plan", "The team meets in Lisbon on 12 May."], ["Budget: 4,000 euros."]]
    )
    mail = _mail("Offsite", "Plan attached.", new_id())
    mail.add_attachment(pdf, maintype="application", subtype="pdf", filename="offsite.pdf")
    bot, adapter = await run_bot(settings_for(), plugins=[documents, chat])
    await deliver(account, mail.as_bytes())
    await settle(bot, adapter)
    (sent,) = await smtp.wait_for(1)
    body = sent.message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Summary of offsite.pdf:" in text
    assert STAND_IN_NOTE in text
    assert "The team meets in Lisbon on 12 May." in text
    [listed] = [line for line in text.splitlines() if "Ask me" in line]
    assert listed == "Ask me anything about it."
