"""Streaming as Telegram drafts: private chats see drafts, then one message; groups edit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from botkit import Bot, ConversationRef, Message, RateLimitError, Reply, Sender
from botkit.config import parse_config
from botkit_telegram._drafts import draft_id_of
from tests.adapters.telegram.conftest import AdapterFactory
from tests.adapters.telegram.support import corpus, eventually
from tests.fakes.openai_server import FakeOpenAI, echo, stream
from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI, ScriptedError

PRIVATE = ConversationRef("telegram", "12345678")
GROUP = ConversationRef("telegram", "-1001417735217")
ENVIRON = {"TELEGRAM_BOT_TOKEN": TOKEN, "OPENAI_API_KEY": "sk-test-key-0123456789"}


def _asking(conversation: ConversationRef) -> Message:
    return Message(conversation, Sender("12345678", "Ann"), "hi", "tg-1")


def _config(tmp_path: Path, api: FakeTelegramAPI, fake_openai: FakeOpenAI, **bot: Any) -> Any:
    return parse_config(
        {
            "bot": {"stream": True, "shutdown_grace": 5.0, **bot},
            "database": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
            "llm": {"base_url": fake_openai.url, "model": "gpt-4o-mini"},
            "web": {"enabled": False, "port": 0},
            "adapters": {
                "telegram": {
                    "use": "botkit_telegram:TelegramAdapter",
                    "api_url": api.api_url,
                    "poll_timeout": 1,
                }
            },
        },
        environ=ENVIRON,
    )


def test_a_draft_id_is_the_outbox_entry_and_never_zero() -> None:
    assert draft_id_of("botkit-17") == 17
    assert draft_id_of("botkit-17") == draft_id_of("botkit-17")
    assert draft_id_of("botkit-0") != 0
    assert draft_id_of("elsewhere") != 0


async def test_a_private_chat_streams_as_an_animated_draft_and_nothing_is_sent(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    stream = await adapter.start_stream(
        _asking(PRIVATE), Reply("**Hi** th"), delivery_id="botkit-41"
    )
    assert stream is not None
    assert stream.message is None  # a draft is no message: nothing to record
    stream = await adapter.append_stream(stream, "**Hi** there & more")

    first, second = api.drafts
    assert (first.chat_id, first.draft_id, second.draft_id) == (12345678, 41, 41)
    assert (first.text, first.parse_mode) == ("Hi th", None)
    assert first.spans() == [("bold", "Hi")]
    assert second.text == "Hi there & more"
    assert api.draft_shown(12345678) == "Hi there & more"
    assert api.sent == []
    assert stream.text == "**Hi** there & more"


async def test_a_group_has_no_drafts_and_telegram_is_not_asked(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    assert await adapter.start_stream(_asking(GROUP), Reply("Hi"), delivery_id="botkit-1") is None
    assert api.calls("sendMessageDraft") == []


async def test_a_chat_that_refuses_drafts_is_remembered(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    api.fail("sendMessageDraft", ScriptedError(400, "Bad Request: TEXTDRAFT_PEER_INVALID"))

    assert (
        await adapter.start_stream(_asking(PRIVATE), Reply("Hi"), delivery_id="botkit-1") is None
    )
    assert (
        await adapter.start_stream(_asking(PRIVATE), Reply("Hi"), delivery_id="botkit-2") is None
    )
    assert len(api.calls("sendMessageDraft")) == 1
    other = ConversationRef("telegram", "777")
    assert await adapter.start_stream(_asking(other), Reply("Hi"), delivery_id="botkit-3")


async def test_a_server_without_drafts_is_remembered_for_every_chat(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    api.fail("sendMessageDraft", ScriptedError(404, "Not Found"))

    assert (
        await adapter.start_stream(_asking(PRIVATE), Reply("Hi"), delivery_id="botkit-1") is None
    )
    other = ConversationRef("telegram", "777")
    assert await adapter.start_stream(_asking(other), Reply("Hi"), delivery_id="botkit-2") is None
    assert len(api.calls("sendMessageDraft")) == 1


async def test_flood_control_on_a_draft_pauses_the_chat_without_waiting(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    stream = await adapter.start_stream(_asking(PRIVATE), Reply("Hi"), delivery_id="botkit-1")
    assert stream is not None
    api.fail("sendMessageDraft", ScriptedError.flood(40))

    with pytest.raises(RateLimitError):
        await adapter.append_stream(stream, "Hi there")
    assert len(api.calls("sendMessageDraft")) == 2  # not tried again: the next step is
    with pytest.raises(RateLimitError):  # the chat waits out Telegram's 40 s, beyond the cap
        await adapter.send(PRIVATE, Reply("later"), delivery_id="botkit-2")


async def test_a_draft_with_refused_entities_shows_plain_text(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    api.fail("sendMessageDraft", ScriptedError.cant_parse())
    stream = await adapter.start_stream(_asking(PRIVATE), Reply("**Hi**"), delivery_id="botkit-1")
    assert stream is not None
    (shown,) = api.drafts  # the refused one is not shown
    assert (shown.text, shown.entities) == ("Hi", ())
    assert len(api.calls("sendMessageDraft")) == 2


async def test_a_streamed_private_answer_is_drafts_then_one_message(
    tmp_path: Path, api: FakeTelegramAPI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(stream(["Hello ", "**there**, ", *["word "] * 30], interval=0.05))
    async with Bot(_config(tmp_path, api, fake_openai)):
        await api.push_update(corpus("01-private-text"))
        await eventually(lambda: bool(api.sent), within=10)
        await eventually(lambda: api.confirmed_offset > 0, within=5)

    (reply,) = api.sent
    assert reply.chat_id == 12345678
    assert reply.text.rstrip() == "Hello there, " + ("word " * 30).strip()
    assert reply.spans() == [("bold", "there")]
    assert api.calls("editMessageText") == []
    assert len(api.drafts) >= 2  # the answer grew in a draft
    assert {d.draft_id for d in api.drafts} == {api.drafts[0].draft_id}
    assert api.draft_shown(12345678) is None  # the message replaced the draft


async def test_a_streamed_group_answer_is_posted_once_and_edited(
    tmp_path: Path, api: FakeTelegramAPI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(stream(["Standup at ", "**ten**, ", *["word "] * 30], interval=0.05))
    async with Bot(_config(tmp_path, api, fake_openai)):
        await api.push_update(corpus("90-DERIVED-supergroup-mention-of-bot"))
        await eventually(
            lambda: bool(api.sent) and api.sent[0].text.rstrip().endswith("word " * 29 + "word"),
            within=10,
        )

    (reply,) = api.sent
    assert reply.chat_id == -1001417735217
    assert reply.edits  # posted early, then edited as the answer grew
    assert api.calls("sendMessageDraft") == []


async def test_an_answer_stopped_mid_draft_is_sent_once_after_the_restart(
    tmp_path: Path, api: FakeTelegramAPI, fake_openai: FakeOpenAI
) -> None:
    # the model goes silent after a few words; the bot stops (its grace ends the stream)
    # and a new one on the same database answers the message again
    fake_openai.default = echo(pad_words=20, stall_after=4, stall_for=60)
    config = _config(tmp_path, api, fake_openai, shutdown_grace=0.5)
    async with Bot(config):
        await api.push_update(corpus("01-private-text"))
        await eventually(lambda: api.draft_shown(12345678) is not None, within=10)
    assert api.sent == []
    fake_openai.default = echo(pad_words=20)

    async with Bot(config):
        await eventually(lambda: bool(api.sent), within=15)
        await eventually(lambda: len(fake_openai.requests) >= 2, within=5)

    (reply,) = api.sent
    assert reply.text.startswith("echo: ")
    assert reply.text.endswith(" w19")


async def test_a_draft_refused_mid_answer_still_ends_in_one_message(
    tmp_path: Path, api: FakeTelegramAPI, fake_openai: FakeOpenAI
) -> None:
    api.fail(
        "sendMessageDraft", ScriptedError(400, "Bad Request: TEXTDRAFT_PEER_INVALID"), after=1
    )
    fake_openai.script(stream(["Hello ", *["word "] * 30], interval=0.05))
    async with Bot(_config(tmp_path, api, fake_openai)):
        await api.push_update(corpus("01-private-text"))
        await eventually(lambda: bool(api.sent), within=10)

    (reply,) = api.sent
    assert reply.text.rstrip() == "Hello " + ("word " * 30).strip()
    assert len(api.calls("sendMessageDraft")) >= 2  # the refused step did not end the answer


async def test_when_no_draft_can_start_the_answer_is_posted_and_edited(
    tmp_path: Path, api: FakeTelegramAPI, fake_openai: FakeOpenAI
) -> None:
    api.fail("sendMessageDraft", ScriptedError.bad_gateway())
    fake_openai.script(stream(["Hello ", *["word "] * 30], interval=0.05))
    async with Bot(_config(tmp_path, api, fake_openai)):
        await api.push_update(corpus("01-private-text"))
        await eventually(
            lambda: bool(api.sent) and api.sent[0].text.rstrip().endswith("word " * 29 + "word"),
            within=10,
        )

    (reply,) = api.sent
    assert reply.edits  # posted with the first text, then edited
    assert len(api.calls("sendMessageDraft")) == 1  # tried once for this answer


async def test_a_draft_longer_than_a_message_shows_its_first_message(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    text = ("A sentence of the answer, said at some length. " * 40 + "\n\n") * 3  # ~5,800
    stream = await adapter.start_stream(_asking(PRIVATE), Reply(text), delivery_id="botkit-1")
    assert stream is not None
    (draft,) = api.drafts  # Telegram refuses drafts past 4,096 characters: none was sent
    assert 3000 < len(draft.text) <= 4096
    # the first message's worth, as rendered (Markdown drops the spaces before a break)
    assert " ".join(text.split()).startswith(" ".join(draft.text.split()))


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"chat_id": -100123, "draft_id": 1, "text": "hi"}, "TEXTDRAFT_PEER_INVALID"),
        ({"chat_id": 42, "draft_id": 0, "text": "hi"}, "DRAFT_ID_INVALID"),
        ({"chat_id": 42, "draft_id": 1, "text": "x" * 4097}, "message is too long"),
        ({"chat_id": 42, "draft_id": 1, "text": "<b>x", "parse_mode": "HTML"}, "can't parse"),
    ],
)
async def test_the_fake_refuses_drafts_as_telegram_does(
    api: FakeTelegramAPI, params: dict[str, Any], description: str
) -> None:
    url = f"{api.api_url}/bot{TOKEN}/sendMessageDraft"
    async with aiohttp.ClientSession() as session, session.post(url, json=params) as response:
        body = await response.json()
    assert (response.status, body["ok"]) == (400, False)
    assert description in body["description"]
    assert api.drafts == []


async def test_the_fake_shows_an_empty_draft_as_a_placeholder_for_thirty_seconds(
    api: FakeTelegramAPI,
) -> None:
    url = f"{api.api_url}/bot{TOKEN}/sendMessageDraft"
    async with aiohttp.ClientSession() as session:
        params = {"chat_id": 42, "draft_id": 9, "text": ""}
        async with session.post(url, json=params) as response:
            assert (await response.json())["result"] is True
    (draft,) = api.drafts
    assert api.draft_shown(42) == ""
    assert api.draft_shown(42, now=draft.at + 31) is None
