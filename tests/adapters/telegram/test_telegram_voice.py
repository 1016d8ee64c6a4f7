"""Voice on Telegram: a voice note is fetched (getFile, then the file endpoint),
transcribed and answered as if typed, and a spoken reply arrives as a voice note
(sendVoice, a multipart upload of Ogg/Opus) after its text."""

from __future__ import annotations

from pathlib import Path

import pytest

from botkit import (
    Attachment,
    Bot,
    ConversationRef,
    Reply,
    RequestRejectedError,
    ServiceUnavailableError,
)
from botkit.config import parse_config
from tests.adapters.telegram.conftest import AdapterFactory
from tests.adapters.telegram.support import eventually
from tests.fakes.audio_files import comments_of, ogg_opus
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI, ScriptedError

PRIVATE = ConversationRef("telegram", "12345678")
USER = {"id": 12345678, "is_bot": False, "first_name": "Ada", "language_code": "en"}


def voice_update(file_id: str, size: int, message_id: int = 7) -> dict[str, object]:
    return {
        "message": {
            "message_id": message_id,
            "date": 1_700_000_000,
            "chat": {"id": 12345678, "type": "private", "first_name": "Ada"},
            "from": USER,
            "voice": {
                "file_id": file_id,
                "file_unique_id": f"U{file_id}",
                "duration": 2,
                "mime_type": "audio/ogg",
                "file_size": size,
            },
        }
    }


async def test_a_voice_note_is_fetched_transcribed_and_answered_with_text_then_voice(
    tmp_path: Path, api: FakeTelegramAPI, fake_openai: FakeOpenAI
) -> None:
    note = ogg_opus(2.0, comments={"TRANSCRIPT": "what time is it"})
    file_id = api.add_file(note)["file_id"]
    config = parse_config(
        {
            "bot": {"stream": False, "shutdown_grace": 5.0},
            "database": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
            "llm": {"base_url": fake_openai.url, "model": "gpt-4o-mini"},
            "adapters": {
                "telegram": {
                    "use": "botkit_telegram:TelegramAdapter",
                    "api_url": api.api_url,
                    "poll_timeout": 1,
                }
            },
            "plugins": {"voice": {"use": "botkit_voice:plugin"}, "chat": {}},
        },
        environ={"TELEGRAM_BOT_TOKEN": TOKEN, "OPENAI_API_KEY": "sk-test-key-0123456789"},
    )
    async with Bot(config) as bot:
        await api.push_update(voice_update(file_id, len(note)))
        await eventually(lambda: len(api.uploads) == 1)
        [row] = [
            m
            for m in await bot.store.history.turns(1, before_id=None, limit=5)
            if m.direction == "in"
        ]
    # fetched through the Bot API's file endpoint, with the token only in the URL path
    [get_file] = api.calls("getFile")
    assert get_file.params["file_id"] == file_id
    assert len(api.downloads) == 1
    upload = fake_openai.audio_requests[0].form
    assert upload is not None
    assert upload["file"].data == note
    # answered as if typed, the transcript stored as the message's text
    assert row.text == "what time is it"
    [text] = api.sent
    assert text.text == "echo: what time is it"
    # then the voice note: Ogg/Opus, uploaded as multipart, saying the answer
    [voice] = api.uploads
    assert voice.kind == "voice"
    assert voice.content_type == "audio/ogg"
    assert voice.filename == "reply.ogg"
    assert voice.data.startswith(b"OggS")
    assert comments_of(voice.data)["SPOKEN"] == "echo: what time is it"
    assert voice.message_id > text.message_id


async def test_send_uploads_audio_after_the_text_and_resumes_after_a_failed_upload(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    audio = ogg_opus(1.0)
    reply = Reply("**Hello**", attachments=(Attachment("reply.ogg", "audio/ogg", data=audio),))
    api.fail("sendVoice", ScriptedError(500, "Internal Server Error"))
    with pytest.raises(ServiceUnavailableError):  # the outbox tries again
        await adapter.send(PRIVATE, reply, delivery_id="d1")
    sent = await adapter.send(PRIVATE, reply, delivery_id="d1")
    [text] = api.sent  # the text was not sent twice
    assert text.text == "Hello"
    [voice] = api.uploads
    assert voice.data == audio
    assert sent.external_id == f"12345678:{text.message_id}"


async def test_an_audio_only_reply_is_one_voice_note(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    audio = ogg_opus(1.0)
    sent = await adapter.send(
        PRIVATE,
        Reply("", attachments=(Attachment("reply.ogg", "audio/ogg", data=audio),)),
        delivery_id="d2",
    )
    assert api.sent == []
    [voice] = api.uploads
    assert sent.external_id == f"12345678:{voice.message_id}"


async def test_fetch_attachment_refuses_a_file_over_its_limit_without_downloading(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    file_id = api.add_file(ogg_opus(1.0))["file_id"]
    big = Attachment("voice.ogg", "audio/ogg", 30 * 1024 * 1024, url=f"telegram-file:{file_id}")
    with pytest.raises(RequestRejectedError) as caught:
        await adapter.fetch_attachment(big)
    assert caught.value.code == "too_large"
    assert api.calls("getFile") == []
    data = await adapter.fetch_attachment(
        Attachment("voice.ogg", "audio/ogg", url=f"telegram-file:{file_id}")
    )
    assert data.startswith(b"OggS")


async def test_a_voice_note_is_transcribed_not_summarised_beside_the_documents_plugin(
    tmp_path: Path, api: FakeTelegramAPI, fake_openai: FakeOpenAI
) -> None:
    note = ogg_opus(1.0, comments={"TRANSCRIPT": "hello there"})
    file_id = api.add_file(note)["file_id"]
    config = parse_config(
        {
            "bot": {"stream": False, "shutdown_grace": 5.0},
            "database": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
            "llm": {"base_url": fake_openai.url, "model": "gpt-4o-mini"},
            "adapters": {
                "telegram": {
                    "use": "botkit_telegram:TelegramAdapter",
                    "api_url": api.api_url,
                    "poll_timeout": 1,
                }
            },
            "plugins": {
                "voice": {"use": "botkit_voice:plugin", "answer_voice_with_voice": False},
                "documents": {"use": "botkit_documents:plugin"},
                "chat": {},
            },
        },
        environ={"TELEGRAM_BOT_TOKEN": TOKEN, "OPENAI_API_KEY": "sk-test-key-0123456789"},
    )
    async with Bot(config):
        await api.push_update(voice_update(file_id, len(note)))
        await eventually(lambda: len(api.sent) == 1)
    [text] = api.sent
    assert text.text == "echo: hello there"
    assert api.uploads == []
    assert len(api.downloads) == 1  # fetched once, by the voice plugin
