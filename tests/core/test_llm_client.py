"""OpenAIChatClient, plain replies: request body, JSON modes, tools, usage and cost."""

from __future__ import annotations

import json
import operator
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import orjson
import pytest
import pytest_asyncio

from botkit.exceptions import InvalidResponseError, RequestRejectedError
from botkit.llm import (
    ChatModel,
    ChatRequest,
    JsonSchema,
    ModelTable,
    OpenAIChatClient,
)
from botkit.llm.encoded import EncodedMessages
from botkit.llm.tokens import TokenCounter
from botkit.llm.types import Usage
from botkit.secrets import Secret
from tests.core import conftest_llm
from tests.core.conftest_llm import KEY, Records
from tests.fakes.openai_server import FakeOpenAI, Responder, completion, raw

fake_openai = conftest_llm.fake_openai

HELLO = [{"role": "user", "content": "hello"}]
JSON_ASK = [
    {"role": "system", "content": "Answer in json."},
    {"role": "user", "content": "Give me a person."},
]
PERSON = JsonSchema(
    "person",
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    },
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest_asyncio.fixture
async def client(fake_openai: FakeOpenAI) -> AsyncIterator[OpenAIChatClient]:
    async with OpenAIChatClient(
        fake_openai.url, Secret(KEY), "gpt-4-turbo", models=ModelTable()
    ) as chat:
        yield chat


async def test_echo_reply_has_content_usage_and_model(client: OpenAIChatClient) -> None:
    reply = await client.complete(ChatRequest(HELLO))
    assert reply.content == "echo: hello"
    assert reply.finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 2
    assert reply.model == "gpt-4-turbo"
    assert reply.tool_calls == ()


async def test_request_body_and_headers(fake_openai: FakeOpenAI) -> None:
    async with OpenAIChatClient(
        fake_openai.url + "/",
        Secret(KEY),
        "gpt-4-turbo",
        models=ModelTable(),
        organization="org-1",
    ) as client:
        await client.complete(
            ChatRequest(HELLO, model="gpt-4o", max_tokens=50, temperature=0.2, purpose="summary")
        )
    (sent,) = fake_openai.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.json == {
        "model": "gpt-4o",
        "messages": HELLO,
        "max_tokens": 50,
        "temperature": 0.2,
    }
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["OpenAI-Organization"] == "org-1"
    assert sent.headers["Content-Type"] == "application/json"


async def test_reasoning_model_gets_max_completion_tokens(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    await client.complete(ChatRequest(HELLO, model="o1-mini", max_tokens=100))
    (sent,) = fake_openai.requests
    assert sent.json["max_completion_tokens"] == 100
    assert "max_tokens" not in sent.json


async def test_no_key_sends_no_authorization_header(fake_openai: FakeOpenAI) -> None:
    async with OpenAIChatClient(fake_openai.url, None, "llama3", models=ModelTable()) as client:
        reply = await client.complete(ChatRequest(HELLO))
    assert reply.content == "echo: hello"
    assert "Authorization" not in fake_openai.requests[0].headers


async def test_json_mode_without_the_word_json_is_refused_before_any_request(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    request = ChatRequest(HELLO, response_format="json_object")
    with pytest.raises(RequestRejectedError, match='"JSON"') as caught:
        await client.complete(request)
    assert caught.value.service == "llm"
    assert fake_openai.requests == []


async def test_json_mode_word_check_ignores_case_and_parses_the_reply(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(completion('{"name": "Ada", "age": 36}'))
    reply = await client.complete(ChatRequest(JSON_ASK, response_format="json_object"))
    assert reply.parsed == {"name": "Ada", "age": 36}
    assert fake_openai.requests[0].json["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("scripted", "match"),
    [
        (completion('{"name": "Ada", "age": '), "not valid JSON"),
        (completion('{"name": "Ada", "ag', finish_reason="length"), "cut off"),
        (completion("[1, 2, 3]"), "not an object"),
        (completion("Sure! Here it is."), "not valid JSON"),
    ],
)
async def test_json_mode_bad_replies_are_invalid_response_errors(
    fake_openai: FakeOpenAI, client: OpenAIChatClient, scripted: Responder, match: str
) -> None:
    fake_openai.script(scripted, scripted)
    with pytest.raises(InvalidResponseError, match=match):
        await client.complete(ChatRequest(JSON_ASK, response_format="json_object"))
    # a cut-off reply is not corrected (raise max_tokens); a malformed one is, once
    assert len(fake_openai.requests) == (1 if match == "cut off" else 2)


async def test_json_schema_is_sent_and_the_reply_validated(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(completion('{"name": "Ada", "age": 36}'))
    reply = await client.complete(ChatRequest(HELLO, response_format=PERSON))
    assert reply.parsed == {"name": "Ada", "age": 36}
    assert fake_openai.requests[0].json["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": dict(PERSON.schema), "strict": True},
    }


async def test_json_schema_mismatch_names_the_field(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(*[completion('{"name": "Ada", "age": "old"}')] * 2)
    with pytest.raises(InvalidResponseError, match=r"person.*age") as caught:
        await client.complete(ChatRequest(HELLO, response_format=PERSON))
    assert caught.value.code == "schema_mismatch"


async def test_refusal_in_schema_mode_raises_naming_the_refusal(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(completion(None, refusal="I can't help with that request."))
    with pytest.raises(InvalidResponseError, match="can't help with that") as caught:
        await client.complete(ChatRequest(HELLO, response_format=PERSON))
    assert caught.value.code == "refusal"


async def test_refusal_in_text_mode_is_returned(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(completion(None, refusal="No."))
    reply = await client.complete(ChatRequest(HELLO))
    assert reply.refusal == "No."
    assert reply.content is None


async def test_invalid_schema_is_refused_before_any_request(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    broken = JsonSchema("broken", {"type": "objekt"})
    with pytest.raises(RequestRejectedError, match="broken"):
        await client.complete(ChatRequest(HELLO, response_format=broken))
    assert fake_openai.requests == []


async def test_tools_are_sent_and_tool_calls_parsed(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(
        completion(
            None,
            tool_calls=[
                ("call_1", "get_weather", '{"city": "Oslo"}'),
                ("call_2", "get_weather", '{"city": "Bergen"}'),
            ],
        )
    )
    reply = await client.complete(ChatRequest(HELLO, tools=[WEATHER_TOOL], tool_choice="required"))
    sent = fake_openai.requests[0].json
    assert sent["tools"] == [WEATHER_TOOL]
    assert sent["tool_choice"] == "required"
    assert reply.finish_reason == "tool_calls"
    assert [c.id for c in reply.tool_calls] == ["call_1", "call_2"]
    assert reply.tool_calls[1].parsed_arguments() == {"city": "Bergen"}
    assert reply.as_message()["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_json_mode_reply_with_tool_calls_is_not_parsed_as_json(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(completion(None, tool_calls=[("c", "get_weather", "{}")]))
    request = ChatRequest(JSON_ASK, response_format="json_object", tools=[WEATHER_TOOL])
    reply = await client.complete(request)
    assert reply.parsed is None
    assert reply.tool_calls[0].name == "get_weather"


async def test_every_call_is_recorded_with_tokens_and_exact_cost(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(completion("fine", usage=(1000, 1000)))
    records = Records()
    await client.complete(ChatRequest(HELLO, purpose="summary"), record=records)
    (record,) = records
    assert record.model == "gpt-4-turbo"
    assert record.purpose == "summary"
    assert (record.prompt_tokens, record.completion_tokens) == (1000, 1000)
    assert record.cost == Decimal("0.04")
    assert record.ok
    assert record.error is None
    assert record.attempt == 1
    assert record.latency_s >= 0


async def test_unknown_model_records_tokens_but_no_cost(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(completion("fine", usage=(100, 20)))
    records = Records()
    await client.complete(ChatRequest(HELLO, model="my-local-llama"), record=records)
    assert (records[0].prompt_tokens, records[0].completion_tokens) == (100, 20)
    assert records[0].cost is None


async def test_a_reply_without_usage_is_counted_by_botkit_and_marked_estimated(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(completion("fine", usage=None))
    records = Records()
    reply = await client.complete(ChatRequest(HELLO), record=records)
    prompt = TokenCounter("cl100k_base").count_messages(HELLO)  # gpt-4-turbo's encoding
    assert reply.usage == Usage(prompt, 1, estimated=True)  # "fine" is one token
    assert (records[0].prompt_tokens, records[0].completion_tokens) == (prompt, 1)
    assert records[0].estimated
    assert records[0].cost == client.model_info("gpt-4-turbo").cost(reply.usage)
    assert records[0].cost


async def test_a_reply_with_usage_is_not_an_estimate(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(completion("fine", usage=(100, 20)))
    records = Records()
    reply = await client.complete(ChatRequest(HELLO), record=records)
    assert reply.usage == Usage(100, 20)
    assert not records[0].estimated


async def test_failed_json_reply_is_recorded_with_its_cost(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(*[completion("not json", usage=(1000, 1000))] * 2)
    records = Records()
    with pytest.raises(InvalidResponseError):
        await client.complete(ChatRequest(JSON_ASK, response_format="json_object"), record=records)
    (record, corrective) = records  # the first reply, and the one corrective try
    assert not corrective.ok
    assert not record.ok
    assert record.cost == Decimal("0.04")  # the tokens were spent all the same
    assert record.error is not None
    assert "not valid JSON" in record.error


async def test_client_is_a_chat_model_and_knows_its_model(client: OpenAIChatClient) -> None:
    assert isinstance(client, ChatModel)
    assert client.model_info().name == "gpt-4-turbo"
    assert client.model_info("gpt-4o-2024-08-06").name == "gpt-4o"


async def test_close_leaves_a_session_it_did_not_make_open(fake_openai: FakeOpenAI) -> None:
    async with aiohttp.ClientSession() as session:
        client = OpenAIChatClient(
            fake_openai.url, None, "gpt-4o", models=ModelTable(), session=session
        )
        await client.complete(ChatRequest(HELLO))
        await client.close()
        assert not session.closed
        await client.complete(ChatRequest(HELLO))
    assert len(fake_openai.requests) == 2


async def test_reply_that_is_not_a_completion_is_an_invalid_response(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(raw(200, json.dumps({"object": "list"}), content_type="application/json"))
    with pytest.raises(InvalidResponseError, match="choices"):
        await client.complete(ChatRequest(HELLO))


async def test_a_reply_any_json_parser_reads_is_read_the_same(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    """Replies are decoded with orjson, and with the standard module where orjson
    refuses what Python's JSON accepts (NaN in logprobs, an integer past 64 bits)."""
    body = (
        '{"id": "c1", "object": "chat.completion", "created": 123456789012345678901234567890,'
        ' "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "stop",'
        ' "logprobs": {"content": [{"token": "ok", "logprob": NaN}]},'
        ' "message": {"role": "assistant", "content": "ok \\u00e9"}}],'
        ' "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}'
    )
    fake_openai.script(raw(200, body, content_type="application/json"))
    completion = await client.complete(ChatRequest(HELLO))
    assert completion.content == "ok é"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 5


@pytest.mark.parametrize("body", [b"\xff\xfe not utf-8", b"<html>502</html>", b""])
async def test_a_reply_that_is_not_json_is_an_invalid_response(
    fake_openai: FakeOpenAI, client: OpenAIChatClient, body: bytes
) -> None:
    fake_openai.script(*[raw(200, body, content_type="application/json")] * 3)
    with pytest.raises(InvalidResponseError, match="not JSON"):
        await client.complete(ChatRequest(HELLO))


# -- messages encoded ahead (EncodedMessages: a long history's turns, from the cache) ----

HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": 'quote "this", ünïcode ✓ and a\nnewline'},
    {"role": "assistant", "content": "done"},
    {"role": "user", "content": "and now?"},
]


async def test_encoded_messages_go_out_as_the_same_body_from_their_json(
    client: OpenAIChatClient, fake_openai: FakeOpenAI
) -> None:
    # JSON that says the same, written differently (spaces, \u escapes): what goes out
    # is this JSON, not the messages encoded again
    written = json.dumps(HISTORY).encode()
    request = ChatRequest(EncodedMessages(HISTORY, written), max_tokens=20)
    assert isinstance(request.messages, EncodedMessages)  # kept, with its JSON
    reply = await client.complete(request)
    await client.complete(ChatRequest(HISTORY, max_tokens=20))
    encoded, plain = fake_openai.requests
    assert written in encoded.body
    assert written not in plain.body
    assert encoded.json == plain.json  # the same request, read back
    assert reply.content == "echo: and now?"


def test_encoded_messages_are_the_tuple_of_their_messages() -> None:
    messages = EncodedMessages(HISTORY, orjson.dumps(HISTORY))
    assert isinstance(messages, tuple)
    assert messages == tuple(HISTORY)
    assert messages == HISTORY  # the list it stands for, too
    assert messages != HISTORY[:3]
    assert operator.ne(messages, HISTORY) is False  # its own !=, not tuple's
    assert json.loads(json.dumps(messages)) == HISTORY  # as any code would send it
    assert ChatRequest(messages) == ChatRequest(HISTORY)
