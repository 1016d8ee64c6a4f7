"""The offline stand-in model: deterministic, honest about itself, a full ChatModel."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from botkit.exceptions import InvalidResponseError, RequestRejectedError
from botkit.llm import ChatModel, ChatRequest, Completion, JsonSchema, StandInModel, TextDelta
from botkit.llm.standin import STAND_IN_PREFIX
from tests.core.conftest_llm import Records

CONVERSATION = [
    {"role": "system", "content": "Be kind."},
    {"role": "user", "content": "first"},
    {"role": "assistant", "content": "ok"},
    {"role": "user", "content": "what is the weather in Oslo?"},
]


async def test_reply_says_it_is_a_stand_in_and_echoes_the_last_user_text() -> None:
    reply = await StandInModel().complete(ChatRequest(CONVERSATION))
    assert reply.content == (
        "[stand-in model, not a real LLM] You said: what is the weather in Oslo?"
    )
    assert reply.content.startswith(STAND_IN_PREFIX)
    assert reply.finish_reason == "stop"
    assert reply.model == "stand-in"


async def test_usage_is_counted_and_costs_nothing() -> None:
    model = StandInModel()
    records = Records()
    reply = await model.complete(ChatRequest(CONVERSATION, purpose="summary"), record=records)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 10
    assert reply.usage.completion_tokens > 5
    (record,) = records
    assert record.ok
    assert record.purpose == "summary"
    assert record.cost == Decimal(0)
    assert record.prompt_tokens == reply.usage.prompt_tokens


async def test_stream_comes_word_by_word_then_the_whole() -> None:
    events = [e async for e in StandInModel().stream(ChatRequest(CONVERSATION))]
    *deltas, final = events
    assert all(isinstance(d, TextDelta) for d in deltas)
    assert isinstance(final, Completion)
    assert final.content is not None
    assert len(deltas) == len(final.content.split())
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == final.content


async def test_json_mode_answers_a_json_object() -> None:
    request = ChatRequest(
        [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "hi"}],
        response_format="json_object",
    )
    reply = await StandInModel().complete(request)
    assert reply.parsed == {"stand_in": True, "echo": "hi"}
    assert json.loads(reply.content or "") == reply.parsed


async def test_json_mode_without_the_word_json_is_refused_like_the_real_client() -> None:
    with pytest.raises(RequestRejectedError, match='"JSON"'):
        await StandInModel().complete(ChatRequest(CONVERSATION, response_format="json_object"))


async def test_schema_mode_answers_a_valid_object() -> None:
    schema = JsonSchema(
        "verdict",
        {
            "type": "object",
            "properties": {
                "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
                "score": {"type": "number"},
                "count": {"type": "integer"},
                "spam": {"type": "boolean"},
                "reason": {"type": "string"},
                "optional": {"type": "string"},
            },
            "required": ["label", "score", "count", "spam", "reason"],
            "additionalProperties": False,
        },
    )
    reply = await StandInModel().complete(ChatRequest(CONVERSATION, response_format=schema))
    assert reply.parsed == {
        "label": "positive",
        "score": 0,
        "count": 0,
        "spam": False,
        "reason": "stand-in",
    }


async def test_schema_it_cannot_satisfy_is_an_invalid_response() -> None:
    schema = JsonSchema(
        "list",
        {
            "type": "object",
            "properties": {"x": {"type": "array", "minItems": 2}},
            "required": ["x"],
        },
    )
    with pytest.raises(InvalidResponseError, match="stand-in"):
        await StandInModel().complete(ChatRequest(CONVERSATION, response_format=schema))


async def test_stand_in_is_a_chat_model_with_a_free_128k_window() -> None:
    model = StandInModel()
    assert isinstance(model, ChatModel)
    info = model.model_info()
    assert info.name == "stand-in"
    assert info.context_window == 128_000
    assert info.input_price_per_1k == Decimal(0)
    assert info.output_price_per_1k == Decimal(0)
    await model.close()


async def test_conversation_without_a_user_message_still_answers() -> None:
    reply = await StandInModel().complete(ChatRequest([{"role": "system", "content": "x"}]))
    assert reply.content == STAND_IN_PREFIX
