"""A whole bot talking to the fake OpenAI server through the real client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest

from botkit import Capabilities, history_cache
from botkit.dispatch import APOLOGY, CONFIG_APOLOGY
from botkit.llm import ChatRequest, TokenCounter
from botkit.llm import _wire as llm_wire
from botkit.llm import client as llm_client
from botkit.llm import encoded as encoded_module
from botkit.llm.encoded import EncodedMessages
from botkit.store import ContextRead, dollars
from botkit.testing import InMemoryChannel, run_bot
from tests.fakes.openai_server import (
    FakeOpenAI,
    completion,
    context_length_exceeded,
    server_error,
    unauthorized,
)

KEY = "sk-test-very-secret-key-0123456789"


def _llm(fake: FakeOpenAI, **extra: object) -> dict[str, object]:
    return {"base_url": fake.url, "model": "gpt-4-turbo", **extra}


async def test_reply_comes_from_the_model_and_its_cost_is_recorded(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(completion("Paris.", usage=(1000, 1000)))
    adapter = InMemoryChannel()
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        environ={"OPENAI_API_KEY": KEY},
        model="config",
        config={"llm": _llm(fake_openai), "bot": {"stream": False}},
    ).bot
    async with bot:
        assert await adapter.exchange("Capital of France?", user="u1") == ["Paris."]
        [usage] = await bot.store.usage.report()
    request = fake_openai.requests[0]
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.json["model"] == "gpt-4-turbo"
    assert request.messages[-1] == {"role": "user", "content": "Capital of France?"}
    assert request.messages[0]["role"] == "system"
    assert (usage.prompt_tokens, usage.completion_tokens) == (1000, 1000)
    assert dollars(usage.cost_nanos) == Decimal("0.04")
    assert usage.channel == "test"
    assert usage.user == "u1"


async def test_history_is_sent_with_each_turn(database_url: str, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(completion("Hi Ann."), completion("Your name is Ann."))
    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={"llm": _llm(fake_openai), "bot": {"stream": False}},
    ).bot:
        await adapter.exchange("I am Ann")
        await adapter.exchange("What is my name?")
    turns = [(m["role"], m["content"]) for m in fake_openai.requests[1].messages[1:]]
    assert turns == [
        ("user", "I am Ann"),
        ("assistant", "Hi Ann."),
        ("user", "What is my name?"),
    ]


async def test_a_long_conversation_reads_only_its_new_turns_per_answer(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={"llm": _llm(fake_openai), "bot": {"history_limit": 40}},
    ).bot as bot:
        read: list[int] = []
        real = bot.store.history.recent_turns

        async def recent_turns(conversation_id: int, **kwargs: Any) -> ContextRead:
            found = await real(conversation_id, **kwargs)
            read.append(len(found.turns))
            return found

        bot.store.history.recent_turns = recent_turns  # type: ignore[method-assign]
        cache = bot.runtime.history
        read_ahead: list[int] = []
        real_prefetched = cache.prefetched

        def prefetched(conversation_id: int, before_id: int, plan: Any, found: Any) -> None:
            read_ahead.append(len(found.turns))
            real_prefetched(conversation_id, before_id, plan, found)

        cache.prefetched = prefetched  # type: ignore[method-assign,assignment]
        for n in range(30):
            await adapter.exchange(f"turn {n}")
    # the first answer read the conversation; every later one only its own message and
    # the previous exchange, however long the conversation had grown: on SQLite read
    # with the message as it was accepted, on PostgreSQL when it is answered
    assert read[0] == 1
    if database_url.startswith("sqlite"):
        assert read[1:] == []
        assert len(read_ahead) == 29
        assert max(read_ahead) <= 3
        assert cache.read_ahead == 29
    else:
        assert read_ahead == []
        assert max(read[1:]) <= 3
    last = fake_openai.requests[-1].messages[1:]
    assert len(last) == 40  # the newest 40 turns, as history_limit says
    assert last[-1] == {"role": "user", "content": "turn 29"}
    assert [m["role"] for m in last[-3:]] == ["user", "assistant", "user"]


async def test_an_active_conversations_turns_are_encoded_once_not_for_every_request(
    database_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[object] = []
    real_encode = encoded_module.encode

    def encode(value: Any) -> bytes:
        encoded.append(value)
        return real_encode(value)

    monkeypatch.setattr(history_cache, "encode", encode)
    ahead: list[bool] = []  # whether each request's messages came with their JSON
    real_body = llm_wire.build_body

    def build_body(request: ChatRequest, *args: Any, **kwargs: Any) -> bytes:
        ahead.append(isinstance(request.messages, EncodedMessages))
        return real_body(request, *args, **kwargs)

    monkeypatch.setattr(llm_client, "build_body", build_body)
    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={"llm": _llm(fake_openai), "bot": {"history_limit": 20, "stream": False}},
    ).bot:
        for n in range(30):
            await adapter.exchange(f"turn {n}", user="ann" if n < 20 else f"u{n % 2}")
    # each turn is encoded once as it settles, and the turns not settled yet (its own
    # message, the previous reply on its way) and the system prompt with each answer;
    # the window once more when a second person speaks (names). Encoding every request's
    # messages would be 30 windows of up to 21 messages: over 400.
    assert len(encoded) <= 2 * 30 + 2 * 30 + 30 + 20
    assert ahead == [True] * 30  # and every body was made of that JSON
    # what was sent is the conversation as stored, the newest 20 turns, named once two
    # people talk, and byte for byte what encoding its messages afresh gives
    last = fake_openai.requests[-1]
    assert last.body == orjson.dumps(last.json)
    turns = [m["content"] for m in last.messages[1:]]
    assert len(turns) == 20
    assert turns[0] == "echo: turn 19"
    assert turns[-1] == "u1: turn 29"
    assert turns[-2:0:-2] == [f"echo: u{k % 2}: turn {k}" for k in range(28, 19, -1)]


async def test_speakers_are_named_when_several_people_talk(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={"llm": _llm(fake_openai), "bot": {"stream": False}},
    ).bot:
        await adapter.exchange("hello", user="u1", name="Ann")
        await adapter.exchange("and me", user="u2", name="Bob")
    contents = [m["content"] for m in fake_openai.requests[1].messages if m["role"] == "user"]
    assert contents == ["Ann: hello", "Bob: and me"]


async def test_a_streamed_answer_is_edited_in_place_and_priced(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(completion("one two three four five six", usage=(20, 6)))
    adapter = InMemoryChannel(capabilities=Capabilities(edits=True, edit_interval=0.0))
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={"llm": _llm(fake_openai)},
    ).bot as bot:
        await adapter.exchange("count")
        [usage] = await bot.store.usage.report()
        [inbound, outbound] = await bot.store.history.messages([1, 2])
    assert (inbound.status, outbound.status) == ("done", "delivered")
    assert fake_openai.requests[0].json["stream"] is True
    assert fake_openai.requests[0].json["stream_options"] == {"include_usage": True}
    [sent] = adapter.sent
    assert sent.text == "one two three four five six"
    assert sent.edits  # it grew in place
    assert (usage.prompt_tokens, usage.completion_tokens) == (20, 6)


async def test_a_server_error_is_retried_with_the_same_request_and_both_calls_recorded(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(server_error(503), completion("Recovered."))
    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={"llm": _llm(fake_openai), "bot": {"stream": False}},
    ).bot as bot:
        assert await adapter.exchange("hi") == ["Recovered."]
        [usage] = await bot.store.usage.report()
    first, second = fake_openai.requests
    assert first.body == second.body  # the user's turn was not appended twice
    assert usage.calls == 2


async def test_context_length_error_is_refitted_once_and_never_shown(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={"llm": _llm(fake_openai), "bot": {"stream": False, "summarize": False}},
    ).bot:
        for i in range(4):
            await adapter.exchange(f"turn {i} " + "lorem ipsum " * 50)
        fake_openai.script(context_length_exceeded(), completion("Short answer."))
        assert await adapter.exchange("final question") == ["Short answer."]
    refused, retried = fake_openai.requests[-2:]
    assert len(retried.body) < len(refused.body) or len(retried.messages) < len(refused.messages)
    assert retried.messages[-1]["content"] == "final question"


async def test_repeated_context_length_errors_end_in_an_apology_not_a_loop(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={"llm": _llm(fake_openai), "bot": {"stream": False, "summarize": False}},
    ).bot as bot:
        for i in range(4):
            await adapter.exchange(f"turn {i} " + "lorem ipsum " * 50)
        before = len(fake_openai.requests)
        fake_openai.script(context_length_exceeded(), context_length_exceeded(), completion("x"))
        message_id = await adapter.receive("hi")
        await bot.inbox.wait_done(message_id)
        [row] = await bot.store.history.messages([message_id])
    assert len(fake_openai.requests) - before == 2  # one re-fit, then it gives up
    assert adapter.sent[-1].text == APOLOGY
    assert row.status == "failed"
    assert "ContextLengthError" in (row.error or "")


async def test_a_model_that_fails_past_the_outage_horizon_gets_the_user_an_apology(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(*[server_error(500) for _ in range(3)])
    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={
            "llm": _llm(fake_openai, max_retries=2),
            "bot": {"stream": False, "outage_horizon": 0},
        },
    ).bot as bot:
        assert await adapter.exchange("hi") == [APOLOGY]
        [usage] = await bot.store.usage.report()
        [row] = await bot.store.history.messages([1])
    assert usage.calls == 3
    assert row.status == "failed"


async def test_a_model_outage_delays_answers_in_order_with_one_notice(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(
        *[server_error(500) for _ in range(3)], completion("first answer"), completion("second")
    )
    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={
            "llm": _llm(fake_openai, max_retries=2),
            "bot": {"stream": False, "outage_retry": 0.2, "delay_notice": "Delayed, sorry."},
        },
    ).bot as bot:
        first = await adapter.receive("hi")
        await bot.inbox.wait_done(first)  # the first try failed: it waits for a retry
        second = await adapter.receive("and another thing")  # waits behind it
        await _eventually(lambda: len(adapter.sent) >= 3)
        rows = await bot.store.history.messages([first, second])
    assert [s.text for s in adapter.sent] == ["Delayed, sorry.", "first answer", "second"]
    assert [r.status for r in rows] == ["done", "done"]
    assert rows[0].attempts == 1  # one postponement, counted


async def _eventually(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.02)


async def test_a_long_history_is_fitted_to_the_window_and_folded_into_a_summary(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    window, reserve = 600, 100
    models = {"tiny-model": {"context_window": window, "max_output_tokens": reserve}}
    adapter = InMemoryChannel()
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={
            "llm": {
                "base_url": fake_openai.url,
                "model": "tiny-model",
                "models": models,
                "reserve_output_tokens": reserve,
            },
            "bot": {"stream": False},
        },
    ).bot
    counter = TokenCounter(None)
    async with bot:
        for i in range(12):
            await adapter.exchange(f"message number {i}: " + "blah " * 40)
        conv = await bot.store.history.conversation_id(adapter.sent[0].conversation)
        summary = (await bot.store.history.recent_turns(conv, before_id=None, limit=0)).summary
        usage = {(u.model, u.calls) for u in await bot.store.usage.report()}
    chat_requests = [r for r in fake_openai.requests if r.json["max_tokens"] == reserve]
    for request in chat_requests:
        assert counter.count_messages(request.messages) <= window - reserve
        assert request.messages[-1]["content"].startswith("message number")
    assert summary is not None
    assert summary[0]
    summary_requests = [r for r in fake_openai.requests if r.json["max_tokens"] == 512]
    assert summary_requests, "turns that no longer fit were folded into a summary"
    assert any(
        "Summary of the conversation so far" in m["content"]
        for m in chat_requests[-1].messages
        if m["role"] == "system"
    )
    assert usage


async def test_the_api_key_never_reaches_logs_or_stored_errors(
    database_url: str, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_openai.script(unauthorized(echo_key=True))
    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        environ={"OPENAI_API_KEY": KEY},
        model="config",
        config={"llm": _llm(fake_openai), "bot": {"stream": False}},
    ).bot as bot:
        assert await adapter.exchange("hi") == [CONFIG_APOLOGY]
        [row] = await bot.store.history.messages([1])
    assert "AuthenticationError" in (row.error or "")
    assert KEY not in (row.error or "")
    assert KEY not in caplog.text
    assert KEY not in repr(bot.config)


@pytest.mark.parametrize(("edits", "streamed"), [(True, True), (False, False)])
async def test_answers_are_streamed_only_to_a_channel_that_can_show_it(
    database_url: str, fake_openai: FakeOpenAI, edits: bool, streamed: bool
) -> None:
    """Streaming is on by default; to a channel that cannot edit (email, the console)
    the model is asked for the whole answer at once: the user sees the same message."""
    adapter = InMemoryChannel(capabilities=Capabilities(edits=edits, max_length=4000))
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        environ={"OPENAI_API_KEY": KEY},
        model="config",
        config={"llm": _llm(fake_openai)},
    ).bot:
        await adapter.exchange("hello")
    [request] = fake_openai.requests
    assert request.wants_stream is streamed
    assert adapter.sent[-1].text == "echo: hello"
