"""Sending and editing replies: rendering, splitting, threads, fallbacks, flood control, errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import botkit_telegram.adapter as adapter_module
from botkit import (
    AuthenticationError,
    ClaimLostError,
    CommandInfo,
    ConversationRef,
    RateLimitError,
    Reply,
    RequestRejectedError,
    ServiceUnavailableError,
)
from botkit.claims import Claims, sending_under
from botkit_telegram import TelegramAdapter
from botkit_telegram._limits import FloodLimiter
from tests.adapters.telegram.conftest import AdapterFactory
from tests.fakes.telegram_api import FakeTelegramAPI, ScriptedError

PRIVATE = ConversationRef("telegram", "12345678")
GROUP = ConversationRef("telegram", "-1001417735217")
TOPIC = ConversationRef("telegram", "-1001417735217", thread_id="77")
NOT_MODIFIED = ScriptedError(
    400,
    "Bad Request: message is not modified: specified new message content and reply markup "
    "of the submitted message are exactly the same as a current content and reply markup "
    "of the message",
)


def paragraphs(chars: int) -> str:
    text, n = "", 0
    while len(text) < chars:
        n += 1
        text += f"Paragraph {n} says **something** about <this> & that, at some length. " * 3
        text += "\n\n"
    return text[:chars]


async def test_markdown_reply_is_sent_as_text_and_entities(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    sent = await adapter.send(PRIVATE, Reply("**Hi** <you> & `x`"), delivery_id="d1")
    (message,) = api.sent
    assert "parse_mode" not in api.calls("sendMessage")[0].params
    assert message.text == "Hi <you> & x"
    assert message.spans() == [("bold", "Hi"), ("code", "x")]
    assert message.reply_to is None  # private chats are not quoted
    assert sent.external_id == f"12345678:{message.message_id}"
    assert sent.parts == (sent.external_id,)
    assert sent.text == "**Hi** <you> & `x`"
    link_preview = api.calls("sendMessage")[0].params["link_preview_options"]
    assert link_preview == {"is_disabled": True}


MODEL_ANSWER = """## Plan 🚀

***Both*** matter, \\*literally\\* so, and **this bold
runs over two lines**.

| step | owner |
|------|-------|
| ship | ops   |

```python
print("<&>")
```

~~~
tilde fence
~~~

See [the page](https://en.wikipedia.org/wiki/Foo_(bar)) 👨‍👩‍👧 then `code`."""


async def test_what_models_write_arrives_formatted_as_the_model_meant(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    await adapter.send(PRIVATE, Reply(MODEL_ANSWER), delivery_id="d1")
    (message,) = api.sent  # the fake checked every entity against the text, in UTF-16
    params = api.calls("sendMessage")[0].params
    assert "parse_mode" not in params
    assert "*literally* so" in message.text
    assert "**" not in message.text
    spans = message.spans()
    assert ("bold", "Plan 🚀") in spans
    assert ("bold", "Both") in spans
    assert ("italic", "Both") in spans
    assert ("bold", "this bold\nruns over two lines") in spans
    assert ("pre", 'print("<&>")') in spans
    assert ("pre", "tilde fence") in spans
    assert ("text_link", "the page") in spans
    assert ("code", "code") in spans
    (table,) = [text for kind, text in spans if kind == "pre" and "owner" in text]
    assert table.splitlines()[0].split() == ["step", "|", "owner"]
    (link,) = [e for e in params["entities"] if e["type"] == "text_link"]
    assert link["url"] == "https://en.wikipedia.org/wiki/Foo_(bar)"
    (python,) = [e for e in params["entities"] if e.get("language") == "python"]
    assert python["type"] == "pre"


async def test_plain_reply_is_sent_without_parse_mode(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    await adapter.send(PRIVATE, Reply("**as is** <b>", markup="plain"), delivery_id="d1")
    params = api.calls("sendMessage")[0].params
    assert "parse_mode" not in params
    assert "entities" not in params
    assert api.sent[0].text == "**as is** <b>"


async def test_group_reply_quotes_the_users_message(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    reply = Reply("sure", reply_to="-1001417735217:16")
    await adapter.send(GROUP, reply, delivery_id="d1")
    assert api.sent[0].reply_to == 16
    params = api.calls("sendMessage")[0].params
    assert params["reply_parameters"]["allow_sending_without_reply"] is True


async def test_forum_topic_reply_goes_to_the_topic(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    await adapter.send(TOPIC, Reply(paragraphs(5000), reply_to="x:16"), delivery_id="d1")
    assert [m.thread_id for m in api.sent] == [77, 77]
    assert [m.reply_to for m in api.sent] == [16, None]  # only the first piece quotes


async def test_five_thousand_characters_arrive_as_two_ordered_messages(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    text = paragraphs(5000)
    sent = await adapter.send(PRIVATE, Reply(text), delivery_id="d1")
    assert len(api.sent) == 2
    assert sent.parts == tuple(f"12345678:{m.message_id}" for m in api.sent)
    assert sent.external_id == sent.parts[-1]
    shown = " ".join(m.text for m in api.sent).split()
    assert shown == text.replace("**", "").split()


async def test_ten_thousand_characters_split_into_pieces_telegram_accepts_in_order(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    text = paragraphs(10_000)
    text = text[:5000] + "\n```python\n" + "print('<&>')\n" * 200 + "```\n" + text[5000:]
    sent = await adapter.send(PRIVATE, Reply(text), delivery_id="d1")
    assert len(api.sent) >= 3
    assert len(sent.parts) == len(api.sent)
    ids = [m.message_id for m in api.sent]
    assert ids == sorted(ids)
    for message in api.sent:
        assert message.parse_mode is None
        assert message.entities  # the fake checked them against the text
        assert len(message.text.encode("utf-16-le")) // 2 <= 4096  # as Telegram counts
    code_lines = sum(m.text.count("print('<&>')") for m in api.sent)
    assert code_lines == 200


async def test_refused_entities_are_the_last_resort_text_without_them_logged_without_the_text(
    api: FakeTelegramAPI, make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = await make_adapter()
    api.fail("sendMessage", ScriptedError.cant_parse())
    sent = await adapter.send(PRIVATE, Reply("**secret plan** text"), delivery_id="d1")
    first, second = api.calls("sendMessage")
    assert first.params["entities"] == [{"type": "bold", "offset": 0, "length": 11}]
    assert "entities" not in second.params
    assert "parse_mode" not in second.params
    assert api.sent[0].text == "secret plan text"
    assert sent.parts == (f"12345678:{api.sent[0].message_id}",)
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "plain text" in warning.getMessage()
    assert "secret plan" not in caplog.text


async def test_streaming_edits_end_with_the_formatted_text(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    sent = await adapter.send(PRIVATE, Reply("Hel"), delivery_id="d1")
    for partial in ("Hello **wor", "Hello **world**", "Hello **world**"):
        sent = await adapter.edit(sent, partial)
    (message,) = api.sent
    assert message.edits == ["Hello **wor", "Hello world"]
    assert message.text == "Hello world"
    assert message.spans() == [("bold", "world")]
    assert sent.text == "Hello **world**"
    assert len(api.calls("editMessageText")) == 2  # the unchanged last edit was not sent


async def test_message_not_modified_counts_as_success(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    sent = await adapter.send(PRIVATE, Reply("one"), delivery_id="d1")
    api.fail("editMessageText", NOT_MODIFIED)
    edited = await adapter.edit(sent, "two")
    assert edited.text == "two"
    assert edited.external_id == sent.external_id


async def test_edit_past_the_limit_continues_in_a_new_message(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    sent = await adapter.send(PRIVATE, Reply("Start."), delivery_id="d1")
    sent = await adapter.edit(sent, paragraphs(6000))
    assert len(api.sent) == 2
    assert len(sent.parts) == 2
    assert api.sent[0].edits  # the first message was edited in place
    sent = await adapter.edit(sent, "Short again.")
    assert api.sent[1].deleted
    assert sent.parts == (f"12345678:{api.sent[0].message_id}",)


async def test_an_edit_whose_entities_are_refused_shows_the_text_without_them(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    sent = await adapter.send(PRIVATE, Reply("a"), delivery_id="d1")
    api.fail("editMessageText", ScriptedError.cant_parse())
    await adapter.edit(sent, "*b*")
    first, second = api.calls("editMessageText")
    assert first.params["entities"] == [{"type": "italic", "offset": 0, "length": 1}]
    assert "entities" not in second.params
    assert api.sent[0].text == "b"
    assert api.sent[0].entities == []


async def test_short_flood_wait_pauses_the_chat_and_retries(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    api.fail("sendMessage", ScriptedError.flood(1))
    sent = await adapter.send(PRIVATE, Reply("hi"), delivery_id="d1")
    first, second = api.calls("sendMessage")
    assert second.at - first.at >= 0.9
    assert sent.parts == (f"12345678:{api.sent[0].message_id}",)


async def test_long_flood_wait_raises_rate_limit_error_and_pauses_only_that_chat(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    api.fail("sendMessage", ScriptedError.flood(120))
    started = time.monotonic()
    with pytest.raises(RateLimitError) as raised:
        await adapter.send(PRIVATE, Reply("hi"), delivery_id="d1")
    assert raised.value.retry_after == 120
    assert raised.value.retryable
    # the chat stays paused: the next reply is refused at once, without a request
    with pytest.raises(RateLimitError) as again:
        await adapter.send(PRIVATE, Reply("hi"), delivery_id="d1")
    assert again.value.retry_after is not None
    assert 100 < again.value.retry_after <= 120
    assert len(api.calls("sendMessage")) == 1
    # nothing slept on the 120-second wait (a bound far from both the wait and a loaded
    # machine's slowness, so it holds under load and still catches a sleep)
    assert time.monotonic() - started < 30
    await adapter.send(GROUP, Reply("other chats go on"), delivery_id="d2")
    assert len(api.sent) == 1


async def test_failed_piece_is_resumed_on_retry_without_doubling_earlier_pieces(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    text = paragraphs(10_000)
    api.fail("sendMessage", ScriptedError.bad_gateway(), after=1)
    with pytest.raises(ServiceUnavailableError):
        await adapter.send(PRIVATE, Reply(text), delivery_id="d1")
    assert len(api.sent) == 1
    sent = await adapter.send(PRIVATE, Reply(text), delivery_id="d1")
    assert len(api.sent) == 3
    assert sent.parts == tuple(f"12345678:{m.message_id}" for m in api.sent)


@pytest.mark.parametrize(
    ("error", "expected", "status"),
    [
        (ScriptedError.blocked(), RequestRejectedError, 403),
        (ScriptedError.chat_not_found(), RequestRejectedError, 400),
        (ScriptedError.bad_gateway(), ServiceUnavailableError, None),
        (ScriptedError(401, "Unauthorized"), AuthenticationError, 401),
    ],
)
async def test_bot_api_errors_map_to_botkit_errors(
    api: FakeTelegramAPI,
    make_adapter: AdapterFactory,
    error: ScriptedError,
    expected: type[Exception],
    status: int | None,
) -> None:
    adapter = await make_adapter()
    api.fail("sendMessage", error)
    with pytest.raises(expected) as raised:
        await adapter.send(PRIVATE, Reply("hi"), delivery_id="d1")
    assert getattr(raised.value, "service", None) == "telegram"
    assert getattr(raised.value, "status", None) == status
    assert isinstance(raised.value.__cause__, Exception)


async def test_empty_reply_is_refused(api: FakeTelegramAPI, make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter()
    with pytest.raises(RequestRejectedError):
        await adapter.send(PRIVATE, Reply("   "), delivery_id="d1")
    assert api.calls("sendMessage") == []


async def test_send_works_before_start(api: FakeTelegramAPI, make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter(start=False)  # the outbox may resume before receiving starts
    await adapter.send(PRIVATE, Reply("left over from last run"), delivery_id="d1")
    assert len(api.sent) == 1


async def test_typing_sends_a_chat_action_to_the_topic(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    await adapter.typing(TOPIC)
    (action,) = api.chat_actions
    assert action["action"] == "typing"
    assert int(action["message_thread_id"]) == 77


async def test_typing_failures_are_not_raised(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    api.fail("sendChatAction", ScriptedError.blocked())
    await adapter.typing(PRIVATE)
    api.fail("sendChatAction", ScriptedError.flood(60))
    await adapter.typing(PRIVATE)
    await adapter.typing(PRIVATE)  # paused: not even tried
    assert len(api.calls("sendChatAction")) == 2


async def test_commands_are_published_with_names_telegram_accepts(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    await adapter.publish_commands(
        [
            CommandInfo("start", "Start talking"),
            CommandInfo("/help", "What I can do"),
            CommandInfo("Reset", "Forget   this\nconversation"),
            CommandInfo("bad-name", "skipped"),
            CommandInfo("help", "a duplicate"),
            CommandInfo("summary", "x" * 300),
        ]
    )
    commands = api.commands
    assert [c["command"] for c in commands] == ["start", "help", "reset", "summary"]
    assert commands[2]["description"] == "Forget this conversation"
    assert len(commands[3]["description"]) == 256


class RecordingLimiter(FloodLimiter):
    """A limiter that remembers which chat each wait was for."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.asked: list[str] = []

    async def wait(self, chat_id: str) -> None:
        self.asked.append(chat_id)
        await super().wait(chat_id)


async def test_limiter_spaces_messages_in_one_chat_but_not_across_chats(
    api: FakeTelegramAPI, make_adapter: AdapterFactory
) -> None:
    # The exact release times are pinned on a virtual clock in test_telegram_limiter.py;
    # here, the adapter asks the limiter for each message's own chat, and the k-th message
    # to one chat cannot reach Telegram before k intervals passed (a lower bound: a loaded
    # machine only delays messages, so this holds however busy it is).
    limiter = RecordingLimiter(
        max_wait=30.0, per_chat_interval=0.2, group_per_minute=1000, global_per_second=1000
    )
    adapter = await make_adapter(limiter=limiter)
    started = time.monotonic()
    await asyncio.gather(
        *(adapter.send(PRIVATE, Reply(f"m{i}"), delivery_id=f"p{i}") for i in range(3)),
        adapter.send(GROUP, Reply("g"), delivery_id="g"),
    )
    assert sorted(limiter.asked) == sorted(["12345678"] * 3 + ["-1001417735217"])
    private = [c for c in api.calls("sendMessage") if c.params["chat_id"] == "12345678"]
    assert [c.params["text"] for c in private] == ["m0", "m1", "m2"]
    for k, call in enumerate(private):
        assert call.at - started >= k * 0.2 - 1e-3


async def test_group_limit_beyond_the_wait_cap_raises_rate_limit_error() -> None:
    limiter = FloodLimiter(max_wait=5, per_chat_interval=0, group_per_minute=2)
    await limiter.wait("-100")
    await limiter.wait("-100")
    with pytest.raises(RateLimitError) as raised:
        await limiter.wait("-100")
    assert raised.value.retry_after is not None
    assert raised.value.retry_after > 55
    await limiter.wait("42")  # private chats have no per-minute cap


def test_capabilities_describe_telegram() -> None:
    caps = TelegramAdapter.capabilities
    assert caps.edits
    assert caps.threads
    assert caps.typing
    assert caps.max_length == 4096
    assert caps.markup == "telegram-entities"


async def test_a_send_whose_claims_lapse_after_the_adapters_own_check_writes_nothing(
    api: FakeTelegramAPI, make_adapter: AdapterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter checks its claims after the flood-limit wait; the HTTP client may
    still wait (a pooled connection) before it writes. The claims trace checks again as
    the first byte is about to go: refused, the Bot API receives nothing and the outbox
    gets the ClaimLostError (not a network error it would retry)."""
    adapter = await make_adapter()
    checks: list[bool] = []
    # the adapter's own check passes, as if the process froze right after it
    monkeypatch.setattr(adapter_module, "ensure_claims_live", lambda: checks.append(True))
    lapsed = Claims(lease=0.05)
    taken = time.monotonic()
    await asyncio.sleep(0.06)
    with sending_under(lapsed, taken), pytest.raises(ClaimLostError):
        await adapter.send(PRIVATE, Reply("late"), delivery_id="d-late")
    assert checks  # the adapter's check ran, and let it through
    assert api.calls("sendMessage") == []
    with sending_under(Claims(lease=60.0), time.monotonic()):
        await adapter.send(PRIVATE, Reply("on time"), delivery_id="d-on-time")
    assert [m.text for m in api.sent] == ["on time"]
