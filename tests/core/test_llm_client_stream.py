"""OpenAIChatClient streaming: SSE edge cases, tools by index, idle timeout, retries."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from botkit.exceptions import (
    ContextLengthError,
    InvalidResponseError,
    RateLimitError,
    RequestRejectedError,
    ServiceUnavailableError,
)
from botkit.llm import ChatRequest, Completion, OpenAIChatClient, TextDelta
from tests.core import conftest_llm
from tests.core.conftest_llm import Records, Sleeps
from tests.fakes.openai_server import FakeOpenAI, completion, rate_limited, raw, stream

fake_openai = conftest_llm.fake_openai
sleeps = conftest_llm.sleeps
make_client = conftest_llm.make_client
MakeClient = conftest_llm.MakeClient

HELLO = [{"role": "user", "content": "hello"}]
PIECES = ["Grüße", " aus", " Köln", " 🎉🎉", " — ça", " va?"]


async def collect(
    client: OpenAIChatClient, request: ChatRequest, records: Records | None = None
) -> tuple[list[str], Completion]:
    """The deltas' texts and the final completion; checks exactly one comes last."""
    texts: list[str] = []
    finals: list[Completion] = []
    async for event in client.stream(request, record=records):
        assert not finals, "nothing may follow the completion"
        if isinstance(event, TextDelta):
            texts.append(event.text)
        else:
            finals.append(event)
    assert len(finals) == 1
    return texts, finals[0]


async def drain(
    client: OpenAIChatClient,
    request: ChatRequest,
    texts: list[str],
    records: Records | None = None,
) -> None:
    """Consume a stream, keeping its texts in ``texts`` even if it then fails."""
    async for event in client.stream(request, record=records):
        if isinstance(event, TextDelta):
            texts.append(event.text)


async def test_stream_yields_deltas_then_the_whole_with_usage_and_cost(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(stream(PIECES, usage=(1000, 1000)))
    records = Records()
    texts, final = await collect(make_client(), ChatRequest(HELLO), records)
    assert texts == PIECES
    assert final.content == "".join(PIECES)
    assert final.finish_reason == "stop"
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (1000, 1000)
    sent = fake_openai.requests[0]
    assert sent.json["stream"] is True
    assert sent.json["stream_options"] == {"include_usage": True}
    assert sent.headers["Accept"] == "text/event-stream"
    (record,) = records
    assert record.ok
    assert record.cost == Decimal("0.04")


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 64])
@pytest.mark.parametrize("crlf", [False, True])
async def test_bytes_split_anywhere_give_the_same_reply(
    fake_openai: FakeOpenAI, make_client: MakeClient, chunk_size: int, crlf: bool
) -> None:
    fake_openai.script(stream(PIECES, chunk_size=chunk_size, crlf=crlf))
    texts, final = await collect(make_client(), ChatRequest(HELLO))
    assert "".join(texts) == "".join(PIECES)
    assert final.content == "".join(PIECES)
    assert final.usage is not None


async def test_many_events_in_one_write_are_all_delivered(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    pieces = [f" w{i}" for i in range(200)]
    fake_openai.script(stream(pieces))  # all events in a single write
    texts, final = await collect(make_client(), ChatRequest(HELLO))
    assert texts == pieces
    assert final.content == "".join(pieces)


async def test_stream_ending_after_finish_reason_without_done_is_accepted(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(stream(["all", " here"], done=False))
    _, final = await collect(make_client(), ChatRequest(HELLO))
    assert final.content == "all here"
    assert final.finish_reason == "stop"
    assert final.usage is not None


async def test_stream_cut_off_after_text_raises_without_retrying(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(stream(["half", " a rep"], finish_reason=None, usage=None, done=False))
    texts: list[str] = []
    records = Records()
    with pytest.raises(ServiceUnavailableError, match="ended before"):
        await drain(make_client(), ChatRequest(HELLO), texts, records)
    assert texts == ["half", " a rep"]
    assert len(fake_openai.requests) == 1  # the caller already has text: no second copy
    assert [r.ok for r in records] == [False]


async def test_stream_cut_off_before_any_text_is_retried(
    fake_openai: FakeOpenAI, make_client: MakeClient, sleeps: Sleeps
) -> None:
    fake_openai.script(stream([], finish_reason=None, usage=None, done=False), stream(["ok"]))
    records = Records()
    texts, _ = await collect(make_client(), ChatRequest(HELLO), records)
    assert texts == ["ok"]
    assert len(fake_openai.requests) == 2
    assert fake_openai.requests[0].body == fake_openai.requests[1].body
    assert [(r.attempt, r.ok) for r in records] == [(1, False), (2, True)]
    assert len(sleeps) == 1


async def test_error_event_mid_stream_raises_the_mapped_error(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    body = {
        "error": {
            "message": "This model's maximum context length is 128000 tokens.",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
    }
    fake_openai.script(stream(PIECES, error_after=2, error_body=body))
    texts: list[str] = []
    with pytest.raises(ContextLengthError):
        await drain(make_client(), ChatRequest(HELLO), texts)
    assert texts == PIECES[:2]


async def test_retryable_error_event_after_text_is_not_retried(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(stream(PIECES, error_after=1), stream(PIECES))
    with pytest.raises(ServiceUnavailableError, match="server had an error"):
        await drain(make_client(), ChatRequest(HELLO), [])
    assert len(fake_openai.requests) == 1


async def test_retryable_error_event_before_any_text_is_retried(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(stream(PIECES, error_after=0), stream(["second", " try"]))
    texts, _ = await collect(make_client(), ChatRequest(HELLO))
    assert texts == ["second", " try"]
    assert len(fake_openai.requests) == 2


async def test_rate_limit_before_the_stream_starts_is_retried_after_retry_after(
    fake_openai: FakeOpenAI, make_client: MakeClient, sleeps: Sleeps
) -> None:
    fake_openai.script(rate_limited(retry_after_ms="1200"), stream(["fine"]))
    texts, _ = await collect(make_client(), ChatRequest(HELLO))
    assert texts == ["fine"]
    assert sleeps == [1.2]


async def test_rate_limit_on_every_try_raises(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(rate_limited(retry_after="1"), rate_limited(retry_after="1"))
    with pytest.raises(RateLimitError):
        await drain(make_client(max_retries=1), ChatRequest(HELLO), [])


async def test_stalled_stream_hits_the_idle_timeout(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(stream(PIECES, stall_after=2, stall_for=20.0))
    started = time.monotonic()
    texts: list[str] = []
    with pytest.raises(ServiceUnavailableError, match="stalled"):
        await drain(make_client(stream_idle_timeout=0.3), ChatRequest(HELLO), texts)
    assert texts == PIECES[:1]  # the role chunk, then one piece, then silence
    # the idle timeout cut it, not the 20-second stall's end (a bound far from both, so a
    # loaded machine cannot fail it)
    assert time.monotonic() - started < 10.0


async def test_stall_before_any_text_is_retried(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(stream(PIECES, stall_after=1, stall_for=20.0), stream(["fresh"]))
    texts, _ = await collect(make_client(stream_idle_timeout=0.3), ChatRequest(HELLO))
    assert texts == ["fresh"]
    assert len(fake_openai.requests) == 2


async def test_slow_but_steady_stream_is_not_cut(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    pieces = [f" part{i}" for i in range(9)]
    fake_openai.script(stream(pieces, interval=0.2, comment=False))
    started = time.monotonic()
    client = make_client(stream_idle_timeout=0.5, timeout=1.0)
    texts, final = await collect(client, ChatRequest(HELLO))
    elapsed = time.monotonic() - started
    assert texts == pieces
    assert elapsed >= 1.8  # longer than both the idle timeout and the request timeout
    assert final.finish_reason == "stop"


async def test_tool_call_fragments_are_assembled_by_index(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(
        stream(
            [],
            tool_calls=[
                ("call_a", "get_weather", '{"city": "Tromsø", "days": 3}'),
                ("call_b", "get_time", '{"zone": "Europe/Oslo"}'),
            ],
            finish_reason="tool_calls",
            chunk_size=9,
        )
    )
    texts, final = await collect(make_client(), ChatRequest(HELLO))
    assert texts == []
    assert final.content is None
    assert final.finish_reason == "tool_calls"
    assert [(c.id, c.name) for c in final.tool_calls] == [
        ("call_a", "get_weather"),
        ("call_b", "get_time"),
    ]
    assert final.tool_calls[0].parsed_arguments() == {"city": "Tromsø", "days": 3}
    assert final.tool_calls[1].parsed_arguments() == {"zone": "Europe/Oslo"}


async def test_a_tool_name_repeated_in_every_fragment_is_taken_once(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    """llama-cpp-python repeats the id and the whole name in every fragment of a
    streamed tool call (OpenAI sends them once); the arguments come in pieces."""

    def chunk(arguments: str) -> str:
        call = {"name": "get_weather", "arguments": arguments}
        delta = {
            "role": None,
            "content": None,
            "function_call": call,
            "tool_calls": [{"index": 0, "id": "call__0", "type": "function", "function": call}],
        }
        data = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
        return f"data: {json.dumps(data)}\n\n"

    finish = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
    }
    body = "".join(chunk(piece) for piece in ['{"city"', ': "Oslo"', "}"])
    body += f"data: {json.dumps(finish)}\n\ndata: [DONE]\n\n"
    fake_openai.script(raw(200, body, content_type="text/event-stream"))
    texts, final = await collect(make_client(), ChatRequest(HELLO))
    assert texts == []
    [call] = final.tool_calls
    assert (call.id, call.name) == ("call__0", "get_weather")
    assert call.parsed_arguments() == {"city": "Oslo"}


async def test_json_mode_stream_is_parsed_at_the_end(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(stream(['{"mood": ', '"happy"', "}"]))
    request = ChatRequest(
        [{"role": "system", "content": "Reply with JSON."}, *HELLO], response_format="json_object"
    )
    texts, final = await collect(make_client(), request)
    assert "".join(texts) == '{"mood": "happy"}'
    assert final.parsed == {"mood": "happy"}


async def test_json_mode_stream_cut_at_the_token_limit_raises(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(stream(['{"mood": ', '"hap'], finish_reason="length"))
    request = ChatRequest(
        [{"role": "system", "content": "Reply with JSON."}, *HELLO], response_format="json_object"
    )
    with pytest.raises(InvalidResponseError, match="cut off"):
        await collect(make_client(), request)


async def test_json_word_missing_is_refused_before_streaming(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    with pytest.raises(Exception, match='"JSON"'):
        await collect(make_client(), ChatRequest(HELLO, response_format="json_object"))
    assert fake_openai.requests == []


async def test_scripted_completion_is_streamed_to_a_streaming_request(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(completion("one two three", usage=(5, 3)))
    texts, final = await collect(make_client(), ChatRequest(HELLO))
    assert texts == ["one", " two", " three"]
    assert final.usage is not None
    assert final.usage.total_tokens == 8


async def test_stream_abandoned_by_the_caller_is_recorded_as_failed(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script(stream(PIECES))
    records = Records()
    events = make_client().stream(ChatRequest(HELLO), record=records)
    first = await anext(events)
    assert isinstance(first, TextDelta)
    await events.aclose()
    assert [(r.ok, r.error) for r in records] == [(False, "llm: the stream was abandoned")]


async def test_server_that_ignores_stream_still_gives_a_stream(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    body = {
        "model": "gpt-4-turbo",
        "choices": [{"index": 0, "message": {"content": "whole"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    fake_openai.script(raw(200, json.dumps(body), content_type="application/json"))
    texts, final = await collect(make_client(), ChatRequest(HELLO))
    assert texts == ["whole"]
    assert final.usage is not None


async def test_vllm_style_error_event_is_mapped_by_its_numeric_code(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    body = {
        "object": "error",
        "message": "bad temperature",
        "type": "BadRequestError",
        "code": 400,
    }
    fake_openai.script(stream(PIECES, error_after=1, error_body=body))
    with pytest.raises(RequestRejectedError, match="bad temperature") as caught:
        await drain(make_client(), ChatRequest(HELLO), [])
    assert caught.value.status == 400
