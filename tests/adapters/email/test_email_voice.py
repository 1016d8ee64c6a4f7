"""Voice by mail: an Ogg/Opus recording attached to a mail, read from the real Dovecot
only when the voice plugin asks, is transcribed by the fake OpenAI server and answered as
if typed; the transcript is what history keeps of the message."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage

from botkit.llm import ModelTable, OpenAIChatClient
from botkit_chat import plugin as chat
from botkit_voice import plugin as voice
from tests.adapters.email.conftest import RunBot, SettingsFactory
from tests.adapters.email.servers import MailAccount, SmtpCapture
from tests.adapters.email.support import deliver, new_id, settle
from tests.fakes.audio_files import ogg_opus
from tests.fakes.openai_server import FakeOpenAI


async def test_an_audio_attachment_is_transcribed_and_answered_with_the_transcript_in_history(
    account: MailAccount,
    smtp: SmtpCapture,
    settings_for: SettingsFactory,
    run_bot: RunBot,
    fake_openai: FakeOpenAI,
) -> None:
    recording = ogg_opus(2.0, comments={"TRANSCRIPT": "when does the office open"})
    mail = EmailMessage(policy=email.policy.SMTP)
    mail["From"] = "Ann Example <ann@example.org>"
    mail["To"] = "bot@example.test"
    mail["Subject"] = "Question"
    mail["Message-ID"] = new_id()
    mail.set_content("")
    mail.add_attachment(recording, maintype="audio", subtype="ogg", filename="question.ogg")
    model = OpenAIChatClient(
        fake_openai.url, None, "gpt-4o-mini", models=ModelTable(), max_retries=0
    )
    bot, adapter = await run_bot(settings_for(), plugins=[voice, chat], model=model)
    await deliver(account, mail.as_bytes())
    await settle(bot, adapter)
    (sent, *_) = await smtp.wait_for(1)
    body = sent.message.get_body(("plain",))
    assert body is not None
    # answered as if typed: the fake's echo of the subject and the transcript
    assert body.get_content().split("\r\n") == [
        "echo: Question",
        "",
        "when does the office open",
        "",
    ]
    # and, spoken to, the bot speaks back: the answer's audio is attached
    [audio] = [p for p in sent.message.iter_attachments() if p.get_content_maintype() == "audio"]
    assert audio.get_content_type() == "audio/mpeg"
    # the recording was uploaded to the transcription endpoint as it was attached
    upload = fake_openai.audio_requests[0].form
    assert upload is not None
    assert upload["file"].data == recording
    # history keeps the transcript as the message's text, and in its metadata
    rows = await bot.store.history.turns(1, before_id=None, limit=5)
    [inbound] = [m for m in rows if m.direction == "in"]
    assert inbound.text == "Question\n\nwhen does the office open"
    assert inbound.meta["voice"]["transcript"] == "when does the office open"
