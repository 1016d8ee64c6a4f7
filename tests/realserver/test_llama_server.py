"""botkit against llama.cpp's OpenAI-compatible server (llama-cpp-python), a server
nobody here wrote, serving a tiny random-weight model: its answers are gibberish, so
these tests assert protocol behaviour, never content.

Each test first pins down what the server does (so a new server version that changes
it fails here, loudly, rather than in a user's bot), then what botkit makes of it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import pytest

from botkit import Capabilities, Context, Plugin, tool
from botkit.exceptions import (
    ContextLengthError,
    InvalidResponseError,
    RequestRejectedError,
)
from botkit.llm import (
    CallRecord,
    ChatMessage,
    ChatRequest,
    Completion,
    JsonSchema,
    ModelTable,
    OpenAIChatClient,
    TextDelta,
)
from botkit.llm.probe import probe
from botkit.testing import InMemoryChannel
from botkit_chat import plugin as chat
from tests.plugins.conftest import StartBot
from tests.realserver.conftest import CONTEXT, LLAMA_OFF, LLAMA_PYTHON, MODEL, LlamaServer

pytestmark = [pytest.mark.slow, pytest.mark.skipif(LLAMA_PYTHON is None, reason=LLAMA_OFF)]

HELLO: list[ChatMessage] = [{"role": "user", "content": "Say hello."}]
IN_JSON: list[ChatMessage] = [
    {"role": "system", "content": "Answer in JSON."},
    {"role": "user", "content": "How do you feel?"},
]
MOOD = JsonSchema(
    "mood",
    {
        "type": "object",
        "properties": {"mood": {"type": "string", "enum": ["happy", "sad"]}},
        "required": ["mood"],
        "additionalProperties": False,
    },
)
ANY_MOOD = JsonSchema(  # nothing required: "{}" is valid
    "any_mood", {"type": "object", "properties": {"mood": {"type": "string"}}}
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]}},
            "required": ["city"],
        },
    },
}
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
TOO_LONG: list[ChatMessage] = [{"role": "user", "content": "word " * (2 * CONTEXT)}]


class Records:
    """A call recorder that keeps what it is given."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    async def __call__(self, record: CallRecord) -> None:
        self.calls.append(record)


async def _post(server: LlamaServer, body: dict[str, Any]) -> tuple[int, str, str]:
    """One raw request: status, content type and body text, to see what the server
    itself does, without botkit in between."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.url}/chat/completions", json=body) as response,
    ):
        return response.status, response.content_type, await response.text()


def _events(text: str) -> list[Any]:
    """The decoded ``data:`` events of a server-sent-event body (``[DONE]`` as is)."""
    events: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data:"):
            data = line.removeprefix("data:").strip()
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


async def _streamed(
    client: OpenAIChatClient, request: ChatRequest, record: Records
) -> tuple[list[str], Completion]:
    """The text deltas and the final completion of a streamed call."""
    texts: list[str] = []
    final: Completion | None = None
    events: AsyncIterator[TextDelta | Completion] = client.stream(request, record=record)
    async for event in events:
        if isinstance(event, TextDelta):
            texts.append(event.text)
        else:
            final = event
    assert final is not None
    return texts, final


# -- usage ---------------------------------------------------------------------------------


async def test_a_plain_answer_carries_the_servers_usage(
    llama_client: OpenAIChatClient,
) -> None:
    record = Records()
    reply = await llama_client.complete(ChatRequest(HELLO, max_tokens=8), record=record)
    assert reply.usage is not None
    assert not reply.usage.estimated  # the server's own count
    assert reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= 8
    [call] = record.calls
    assert (call.ok, call.estimated, call.prompt_tokens) == (
        True,
        False,
        reply.usage.prompt_tokens,
    )


async def test_a_stream_has_no_usage_even_when_asked_so_botkit_counts_it(
    llama_server: LlamaServer, llama_client: OpenAIChatClient
) -> None:
    body = {
        "model": MODEL,
        "messages": HELLO,
        "max_tokens": 8,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, content_type, text = await _post(llama_server, body)
    assert (status, content_type) == (200, "text/event-stream")
    events = _events(text)
    assert events[-1] == "[DONE]"
    assert not [e for e in events[:-1] if e.get("usage")], "the server now sends usage"
    assert events[-2]["choices"][0]["finish_reason"] in ("stop", "length")

    record = Records()
    texts, reply = await _streamed(llama_client, ChatRequest(HELLO, max_tokens=8), record)
    assert reply.content == "".join(texts)
    assert reply.usage is not None
    assert reply.usage.estimated  # botkit's own count, marked as such
    assert reply.usage.prompt_tokens > 0
    [call] = record.calls
    assert (call.ok, call.estimated) == (True, True)
    assert call.prompt_tokens == reply.usage.prompt_tokens


async def test_a_bot_stores_its_streamed_answers_as_estimated_usage(
    start_bot: StartBot, llama_client: OpenAIChatClient
) -> None:
    editing = InMemoryChannel(capabilities=Capabilities(edits=True))  # streams show there
    async with start_bot(plugins=[chat], model=llama_client, channels=[editing]) as bot:
        answers = [await bot.ask("hello"), await bot.ask("and again")]
        rows = await bot.store.usage.report()
    assert all(a.strip() for a in answers), answers  # gibberish, but an answer
    [row] = rows
    assert row.calls == 2
    assert row.estimated_calls == 2  # streamed: the server sent no usage
    assert row.model == MODEL
    assert row.prompt_tokens > 0


# -- structured output ---------------------------------------------------------------------


async def test_the_server_refuses_json_schema_with_a_500(llama_server: LlamaServer) -> None:
    body = {
        "model": MODEL,
        "messages": IN_JSON,
        "max_tokens": 32,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": MOOD.name, "schema": dict(MOOD.schema), "strict": True},
        },
    }
    for stream in (False, True):
        status, _, text = await _post(llama_server, {**body, "stream": stream})
        # llama-cpp-python validates response_format.type against "text" | "json_object"
        # and reports the failure as a 500 (not a 400 or 422), a traceback line included
        assert status == 500
        error = json.loads(text)["error"]
        assert error["type"] == "internal_server_error"
        assert "validation error" in error["message"]
        assert "'json_schema'" in error["message"]


async def test_botkit_falls_back_to_json_object_at_the_first_refusal_and_keeps_it(
    llama_client: OpenAIChatClient,
) -> None:
    record = Records()
    request = ChatRequest(IN_JSON, max_tokens=32, response_format=ANY_MOOD)
    first = await llama_client.complete(request, record=record)
    assert first.parsed == {}  # "{}": what the tiny model's JSON grammar leads it to
    assert llama_client.structured_mode() == "json_object"
    assert [c.ok for c in record.calls] == [False, True]  # one refusal, no outage retries
    assert record.calls[0].error is not None
    assert "response_format.type" in record.calls[0].error
    second = await llama_client.complete(request, record=record)
    assert second.parsed == {}
    assert len(record.calls) == 3  # straight to json_object

    # once learnt, a stream asks for json_object too
    texts, streamed = await _streamed(llama_client, request, record)
    assert json.loads("".join(texts)) == streamed.parsed == {}


async def test_a_reply_that_misses_the_schema_is_corrected_once_then_an_error(
    llama_client: OpenAIChatClient,
) -> None:
    """json_object mode constrains the reply to JSON, not to the schema (the schema is
    only in the prompt): the tiny model's "{}" lacks the required field."""
    record = Records()
    with pytest.raises(InvalidResponseError) as raised:
        await llama_client.complete(
            ChatRequest(IN_JSON, max_tokens=32, response_format=MOOD), record=record
        )
    assert raised.value.code == "schema_mismatch"
    assert "'mood' is a required property" in raised.value.reason
    # the refusal, the answer that missed, and the one corrective try
    assert [c.ok for c in record.calls] == [False, False, False]


async def test_json_schema_set_for_the_model_is_refused_in_one_line_without_retries(
    llama_server: LlamaServer,
) -> None:
    models = ModelTable.from_config(
        {MODEL: {"context_window": CONTEXT, "structured_output": "json_schema"}}
    )
    record = Records()
    async with OpenAIChatClient(
        llama_server.url, None, MODEL, models=models, max_retries=4, backoff_base=0.01
    ) as client:
        request = ChatRequest(IN_JSON, max_tokens=32, response_format=MOOD)
        with pytest.raises(RequestRejectedError) as raised:
            await client.complete(request, record=record)
        with pytest.raises(RequestRejectedError):  # refused before the stream starts too
            await _streamed(client, request, record)
    assert not raised.value.retryable
    assert len(record.calls) == 2  # refused, not retried as if the server were down
    reason = raised.value.reason
    assert "response_format.type" in reason
    assert "'json_schema'" in reason
    assert "File " not in reason
    assert "\n" not in reason


async def test_a_first_structured_stream_falls_back_too(
    llama_client: OpenAIChatClient,
) -> None:
    request = ChatRequest(IN_JSON, max_tokens=32, response_format=ANY_MOOD)
    _, streamed = await _streamed(llama_client, request, Records())
    assert streamed.parsed == {}


async def test_json_object_mode_is_grammar_constrained_json(
    llama_client: OpenAIChatClient,
) -> None:
    request = ChatRequest(IN_JSON, max_tokens=32, response_format="json_object")
    reply = await llama_client.complete(request)
    assert reply.finish_reason == "stop"
    assert isinstance(reply.parsed, dict)
    assert json.loads(reply.content or "") == reply.parsed

    texts, streamed = await _streamed(llama_client, request, Records())
    assert isinstance(streamed.parsed, dict)
    assert json.loads("".join(texts)) == streamed.parsed


async def test_json_object_with_a_schema_key_follows_the_schema(
    llama_server: LlamaServer,
) -> None:
    """llama-cpp-python's own extension: ``response_format: {"type": "json_object",
    "schema": ...}`` constrains the answer to the schema (the way to get structured
    output from this server, since it refuses ``json_schema``)."""
    body = {
        "model": MODEL,
        "messages": IN_JSON,
        "max_tokens": 32,
        "response_format": {"type": "json_object", "schema": dict(MOOD.schema)},
    }
    status, _, text = await _post(llama_server, body)
    assert status == 200
    content = json.loads(text)["choices"][0]["message"]["content"]
    assert json.loads(content)["mood"] in ("happy", "sad")


# -- tools ---------------------------------------------------------------------------------


async def test_only_a_named_tool_choice_makes_the_server_call_a_tool(
    llama_server: LlamaServer,
) -> None:
    """With ``tool_choice`` "auto" or "required" the server answers in text: only a
    named function gets a (grammar-constrained) call."""
    for choice in ("auto", "required"):
        body = {
            "model": MODEL,
            "messages": HELLO,
            "max_tokens": 8,
            "tools": [WEATHER],
            "tool_choice": choice,
        }
        status, _, text = await _post(llama_server, body)
        assert status == 200
        message = json.loads(text)["choices"][0]["message"]
        assert not message.get("tool_calls"), choice
        assert isinstance(message["content"], str)


async def test_a_tool_call_and_its_follow_up_are_accepted(
    llama_client: OpenAIChatClient,
) -> None:
    request = ChatRequest(HELLO, max_tokens=32, tools=[WEATHER], tool_choice=FORCE_WEATHER)
    called = await llama_client.complete(request)
    assert called.finish_reason == "tool_calls"
    assert called.content is None
    [call] = called.tool_calls
    assert call.name == "get_weather"
    assert call.id
    assert call.parsed_arguments()["city"] in ("Paris", "Oslo")

    # the follow-up, as botkit's tool loop sends it: the assistant turn (content "")
    # and the tool's result
    turn = called.as_message()
    assert turn["content"] == ""
    messages = [
        *HELLO,
        turn,
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 °C"},
    ]
    follow_up = ChatRequest(messages, max_tokens=8, tools=[WEATHER])
    answer = await llama_client.complete(follow_up)
    assert isinstance(answer.content, str)
    assert not answer.tool_calls
    texts, streamed = await _streamed(llama_client, follow_up, Records())
    assert streamed.content == "".join(texts)


weather = Plugin("weather")
asked: list[str] = []


@dataclass(frozen=True)
class WeatherArgs:
    city: Literal["Paris", "Oslo"]


@tool(weather, "get_weather")
async def get_weather(args: WeatherArgs, ctx: Context) -> str:
    """The weather in a city."""
    asked.append(args.city)
    return f"Sunny in {args.city}"


async def test_a_bot_runs_a_forced_tool_and_answers_after_the_follow_up(
    start_bot: StartBot, llama_client: OpenAIChatClient
) -> None:
    """The whole tool loop against the server: the first request forces the call
    (``[plugins.chat] tool_choice``), the tool runs once, the follow-up (the assistant
    turn with content "" and the tool's result) is accepted and answered in text."""
    asked.clear()
    settings = {"chat": {"tool_choice": "get_weather"}}
    async with start_bot(plugins=[weather, chat], model=llama_client, settings=settings) as bot:
        answer = await bot.ask("What is the weather like?")
        [row] = await bot.store.usage.report()
    assert len(asked) == 1
    assert asked[0] in ("Paris", "Oslo")
    assert answer.strip()
    assert "Sorry" not in answer
    assert row.calls == 2  # the forced call, then the follow-up


async def test_a_streamed_tool_call_is_assembled(llama_client: OpenAIChatClient) -> None:
    request = ChatRequest(HELLO, max_tokens=32, tools=[WEATHER], tool_choice=FORCE_WEATHER)
    texts, reply = await _streamed(llama_client, request, Records())
    assert texts == []
    [call] = reply.tool_calls
    assert call.name == "get_weather"
    assert call.parsed_arguments()["city"] in ("Paris", "Oslo")
    assert reply.usage is not None
    assert reply.usage.estimated


async def test_a_null_content_is_refused_and_not_retried(
    llama_server: LlamaServer, models: ModelTable
) -> None:
    """Why botkit sends ``content: ""``: the server refuses an assistant turn whose
    content is null (a 500 carrying a validation error)."""
    turn: ChatMessage = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    messages = [*HELLO, turn, {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"}]
    status, _, text = await _post(
        llama_server, {"model": MODEL, "messages": messages, "max_tokens": 4}
    )
    assert status == 500
    assert "Input should be a valid string" in json.loads(text)["error"]["message"]

    record = Records()
    async with OpenAIChatClient(
        llama_server.url, None, MODEL, models=models, max_retries=4, backoff_base=0.01
    ) as client:
        with pytest.raises(RequestRejectedError) as raised:
            await client.complete(ChatRequest(messages, max_tokens=4), record=record)
    assert len(record.calls) == 1
    assert "messages.1.content: Input should be a valid string" in raised.value.reason


# -- the context window --------------------------------------------------------------------


async def test_a_prompt_longer_than_the_window_is_a_context_length_error(
    llama_server: LlamaServer, llama_client: OpenAIChatClient
) -> None:
    status, _, text = await _post(
        llama_server, {"model": MODEL, "messages": TOO_LONG, "max_tokens": 8}
    )
    assert status == 400
    assert json.loads(text)["error"]["code"] == "context_length_exceeded"

    record = Records()
    with pytest.raises(ContextLengthError) as raised:
        await llama_client.complete(ChatRequest(TOO_LONG, max_tokens=8), record=record)
    assert f"maximum context length is {CONTEXT} tokens" in raised.value.reason
    assert len(record.calls) == 1


async def test_the_window_stated_in_the_error_is_learnt_for_an_unknown_model(
    llama_server: LlamaServer,
) -> None:
    async with OpenAIChatClient(
        llama_server.url, None, MODEL, models=ModelTable(), max_retries=0
    ) as client:
        assert client.model_info().context_window > CONTEXT  # assumed
        with pytest.raises(ContextLengthError):
            await client.complete(ChatRequest(TOO_LONG, max_tokens=8))
        assert client.model_info().context_window == CONTEXT  # learnt


async def test_a_streamed_prompt_longer_than_the_window_gets_an_empty_stream(
    llama_server: LlamaServer,
) -> None:
    """The server starts the stream (200) before it looks at the prompt; the error goes
    to its log, and the stream ends with no event at all, not even ``[DONE]``."""
    body = {"model": MODEL, "messages": TOO_LONG, "max_tokens": 8, "stream": True}
    status, content_type, text = await _post(llama_server, body)
    assert (status, content_type) == (200, "text/event-stream")
    assert _events(text) == []


async def test_a_streamed_prompt_longer_than_the_window_is_a_context_length_error(
    llama_client: OpenAIChatClient,
) -> None:
    with pytest.raises(ContextLengthError):
        await _streamed(llama_client, ChatRequest(TOO_LONG, max_tokens=8), Records())


async def test_a_reply_that_would_overflow_the_window_is_cut_not_refused(
    llama_server: LlamaServer,
) -> None:
    """A prompt that fits with a ``max_tokens`` that does not is answered, the reply cut
    where the window ends (``finish_reason`` "length"), rather than refused."""
    prompt: list[ChatMessage] = [{"role": "user", "content": "ab " * (CONTEXT // 4)}]
    body = {"model": MODEL, "messages": prompt, "max_tokens": CONTEXT, "temperature": 0}
    status, _, text = await _post(llama_server, body)
    assert status == 200
    reply = json.loads(text)
    usage = reply["usage"]
    assert usage["prompt_tokens"] < CONTEXT
    assert reply["choices"][0]["finish_reason"] == "length"
    assert usage["total_tokens"] == CONTEXT


async def test_any_model_name_is_answered_by_the_one_model(llama_server: LlamaServer) -> None:
    """A single-model server answers whatever model is asked for (no 404), naming it
    back: a misspelt model in the config is not caught by the server."""
    status, _, text = await _post(
        llama_server, {"model": "no-such-model", "messages": HELLO, "max_tokens": 2}
    )
    assert status == 200
    assert json.loads(text)["model"] == "no-such-model"


async def test_the_probe_tells_what_llama_cpps_server_supports(
    llama_client: OpenAIChatClient,
) -> None:
    """``botkit check-config --probe`` against the real thing."""
    report = await probe(llama_client)
    found = dict(report.lines)
    assert found["streaming"] == "works; no usage from the server: botkit counts tokens"
    # json_schema refused, json_object taken (the tiny model's "{}" misses the schema)
    assert found["structured output"].startswith("json_object")
    assert found["tools"] == "work"
    assert not report.failed
