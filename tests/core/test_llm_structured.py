"""Structured output on servers that support less than ``json_schema``: the client
learns the best mode from the first refusal, and a reply that does not match the
schema gets one corrective try, not the retries of an outage."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from botkit import Context, Message, Plugin
from botkit.exceptions import ConfigError, InvalidResponseError, ServiceUnavailableError
from botkit.llm import (
    ChatRequest,
    Completion,
    JsonSchema,
    ModelTable,
    OpenAIChatClient,
    TextDelta,
)
from botkit.secrets import Secret
from botkit.testing import InMemoryChannel, run_bot
from tests.core import conftest_llm
from tests.core.conftest_llm import KEY, Records, Sleeps
from tests.fakes.openai_server import FakeOpenAI, completion, server_error

fake_openai = conftest_llm.fake_openai
sleeps = conftest_llm.sleeps

ASK = [
    {"role": "system", "content": "You label messages."},
    {"role": "user", "content": "Label: I love it"},
]
LABEL = JsonSchema(
    "label",
    {
        "type": "object",
        "properties": {"label": {"enum": ["positive", "negative"]}},
        "required": ["label"],
    },
)
GOOD = '{"label": "positive"}'


@pytest_asyncio.fixture
async def client(fake_openai: FakeOpenAI, sleeps: Sleeps) -> AsyncIterator[OpenAIChatClient]:
    models = ModelTable()
    async with OpenAIChatClient(
        fake_openai.url, Secret(KEY), "tiny-llama", models=models, sleep=sleeps
    ) as chat:
        yield chat


def _format(request_json: object) -> object:
    assert isinstance(request_json, dict)
    fmt = request_json.get("response_format")
    return fmt.get("type") if isinstance(fmt, dict) else None


async def test_a_refused_json_schema_falls_back_to_json_object_once_and_is_remembered(
    fake_openai: FakeOpenAI, client: OpenAIChatClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openai.refused_formats = {"json_schema"}
    fake_openai.script(completion(GOOD), completion(GOOD))
    records = Records()
    with caplog.at_level(logging.WARNING, logger="botkit.llm"):
        first = await client.complete(ChatRequest(ASK, response_format=LABEL), record=records)
        second = await client.complete(ChatRequest(ASK, response_format=LABEL))
    assert first.parsed == second.parsed == {"label": "positive"}
    # one refusal, no retries as for an outage, then json_object for good
    assert [_format(r.json) for r in fake_openai.requests] == [
        "json_schema",
        "json_object",
        "json_object",
    ]
    system = fake_openai.requests[1].messages[0]
    assert system["role"] == "system"
    assert system["content"].startswith("You label messages.")
    assert json.dumps(dict(LABEL.schema)) in system["content"]
    assert "JSON" in system["content"]
    assert len(fake_openai.requests[1].messages) == len(ASK)  # joined, not added
    assert [r.ok for r in records] == [False, True]
    warnings = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(warnings) == 1
    assert "json_schema" in warnings[0]
    assert client.structured_mode() == "json_object"


async def test_a_server_without_any_json_mode_is_asked_in_the_prompt(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.refused_formats = {"json_schema", "json_object"}
    fake_openai.script(completion(f"```json\n{GOOD}\n```"))
    reply = await client.complete(ChatRequest(ASK, response_format=LABEL))
    assert reply.parsed == {"label": "positive"}  # the code fence taken off
    assert [_format(r.json) for r in fake_openai.requests] == [
        "json_schema",
        "json_object",
        None,
    ]
    assert client.structured_mode() == "prompt"


async def test_the_mode_can_be_set_per_model(fake_openai: FakeOpenAI) -> None:
    models = ModelTable.from_config({"tiny-llama": {"structured_output": "prompt"}})
    fake_openai.script(completion(GOOD))
    async with OpenAIChatClient(fake_openai.url, Secret(KEY), "tiny-llama", models=models) as c:
        reply = await c.complete(ChatRequest(ASK, response_format=LABEL))
    assert reply.parsed == {"label": "positive"}
    [sent] = fake_openai.requests
    assert _format(sent.json) is None
    assert "label" in sent.messages[0]["content"]
    with pytest.raises(ConfigError, match="structured_output"):
        ModelTable.from_config({"x": {"structured_output": "xml"}})


async def test_a_reply_that_misses_the_schema_gets_one_corrective_try(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(completion('{"label": "great"}'), completion(GOOD))
    reply = await client.complete(ChatRequest(ASK, response_format=LABEL))
    assert reply.parsed == {"label": "positive"}
    retry = fake_openai.requests[1].messages
    assert retry[-2] == {"role": "assistant", "content": '{"label": "great"}'}
    assert retry[-1]["role"] == "user"
    assert "not valid" in retry[-1]["content"]
    assert "label" in retry[-1]["content"]  # where the schema was missed


async def test_a_second_bad_reply_is_an_error_not_more_retries(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(completion("no json here"), completion("still none"), completion(GOOD))
    with pytest.raises(InvalidResponseError, match="not valid JSON"):
        await client.complete(ChatRequest(ASK, response_format=LABEL))
    assert len(fake_openai.requests) == 2


async def test_once_a_mode_worked_a_server_error_is_an_outage_not_a_refusal(
    fake_openai: FakeOpenAI, client: OpenAIChatClient, sleeps: Sleeps
) -> None:
    fake_openai.script(completion(GOOD))
    await client.complete(ChatRequest(ASK, response_format=LABEL))
    fake_openai.default = server_error(500)
    with pytest.raises(ServiceUnavailableError):
        await client.complete(ChatRequest(ASK, response_format=LABEL))
    assert client.structured_mode() == "json_schema"
    assert {_format(r.json) for r in fake_openai.requests} == {"json_schema"}
    assert len(sleeps) >= 1  # retried with backoff, as an outage is


async def test_a_first_structured_stream_learns_the_mode_as_a_whole_reply_does(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.refused_formats = {"json_schema"}
    fake_openai.script(completion(GOOD))
    events = [e async for e in client.stream(ChatRequest(ASK, response_format=LABEL))]
    *texts, whole = events
    assert isinstance(whole, Completion)
    assert whole.parsed == {"label": "positive"}
    assert "".join(t.text for t in texts if isinstance(t, TextDelta)) == GOOD
    assert client.structured_mode() == "json_object"


async def test_a_learnt_mode_is_stored_and_used_from_the_next_start(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    plugin = Plugin("labeller")

    @plugin.on_message()
    async def label(message: Message, ctx: Context) -> str:
        reply = await ctx.llm.complete(ChatRequest(ASK, response_format=LABEL, purpose="x"))
        return str(reply.parsed)

    fake_openai.refused_formats = {"json_schema"}
    fake_openai.default = completion(GOOD)
    adapter = InMemoryChannel()  # one channel: its message ids go on across starts
    for _ in range(2):  # two starts, a new client each
        model = OpenAIChatClient(fake_openai.url, Secret(KEY), "tiny-llama", models=ModelTable())
        async with (
            model,
            run_bot(
                database_url=database_url, channels=[adapter], plugins=[plugin], model=model
            ).bot,
        ):
            assert await adapter.exchange("hi") == ["{'label': 'positive'}"]
    # refused once, by the first process only
    assert [_format(r.json) for r in fake_openai.requests] == [
        "json_schema",
        "json_object",
        "json_object",
    ]


async def test_a_plain_500_before_any_success_is_an_outage_not_a_refusal(
    fake_openai: FakeOpenAI, client: OpenAIChatClient, sleeps: Sleeps
) -> None:
    """A routine server error on a fresh client's first structured call is retried as an
    outage: it never makes botkit ask every later call for less."""
    fake_openai.script(server_error(500), completion(GOOD))
    reply = await client.complete(ChatRequest(ASK, response_format=LABEL))
    assert reply.parsed == {"label": "positive"}
    assert [_format(r.json) for r in fake_openai.requests] == ["json_schema", "json_schema"]
    assert client.structured_mode() == "json_schema"
    assert sleeps  # backed off, as for an outage
