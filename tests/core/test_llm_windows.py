"""Unknown models: the window a server states in a context-length error is learnt and
every later call fits it (chat, summaries and skills alike), and start-up says in one
line what is assumed for a model the table does not know."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from botkit import Context, ContextLengthError, Message, Plugin
from botkit.llm import ChatRequest, ModelTable, OpenAIChatClient
from botkit.llm.models import UNKNOWN_CONTEXT_WINDOW, stated_window, unknown_model_note
from botkit.secrets import Secret
from botkit.testing import InMemoryChannel, run_bot
from tests.core import conftest_llm
from tests.core.conftest_llm import KEY
from tests.fakes.openai_server import FakeOpenAI, completion, error, raw

fake_openai = conftest_llm.fake_openai


def _too_long(window: int) -> object:
    return error(
        400,
        f"This model's maximum context length is {window} tokens. However, your messages "
        f"resulted in {window * 3} tokens. Please reduce the length of the messages.",
        code="context_length_exceeded",
    )


@pytest.mark.parametrize(
    ("message", "window"),
    [
        ("This model's maximum context length is 4096 tokens. However, you requested", 4096),
        ('the request exceeds the available context size {"n_ctx": 512}', 512),
        ("the request exceeds the available context size (2048 tokens)", 2048),
        ("prompt is too long for the context window of 1024", 1024),
        ("input too long", None),
    ],
)
def test_the_window_a_server_states_is_read_from_its_error(
    message: str, window: int | None
) -> None:
    assert stated_window(message) == window


def test_start_up_names_an_unknown_model_and_what_to_set() -> None:
    table = ModelTable()
    assert unknown_model_note(table.lookup("gpt-4o"), table) is None
    note = unknown_model_note(table.lookup("tiny-chat"), table)
    assert note == (
        "tiny-chat: unknown model, 8,192-token window assumed, no prices; "
        'set [llm.models."tiny-chat"]'
    )
    configured = ModelTable.from_config({"tiny-chat": {"context_window": 2048}})
    assert unknown_model_note(configured.lookup("tiny-chat"), configured) is None


@pytest_asyncio.fixture
async def client(fake_openai: FakeOpenAI) -> AsyncIterator[OpenAIChatClient]:
    async with OpenAIChatClient(
        fake_openai.url, Secret(KEY), "tiny-chat", models=ModelTable(), max_retries=0
    ) as chat:
        yield chat


async def test_the_client_learns_the_window_from_the_first_context_length_error(
    fake_openai: FakeOpenAI, client: OpenAIChatClient, caplog: pytest.LogCaptureFixture
) -> None:
    assert client.model_info().context_window == UNKNOWN_CONTEXT_WINDOW
    fake_openai.script(_too_long(1000))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="botkit.llm"), pytest.raises(ContextLengthError):
        await client.complete(ChatRequest([{"role": "user", "content": "hi"}]))
    info = client.model_info()
    assert info.context_window == 1000
    assert info.max_output_tokens <= 250  # most of a small window is left to the prompt
    assert [r for r in caplog.records if "1000 tokens" in r.getMessage()]


def _labeller() -> tuple[Plugin, list[str]]:
    """A skill that asks the model about each message (as sentiment does)."""
    plugin = Plugin("labeller")
    said: list[str] = []

    @plugin.on_message()
    async def label(message: Message, ctx: Context) -> str:
        completion = await ctx.llm.complete(
            ChatRequest(
                [
                    {"role": "system", "content": "Label the message."},
                    {"role": "user", "content": message.text},
                ],
                max_tokens=50,
                purpose="label",
            )
        )
        said.append(completion.content or "")
        return "labelled"

    return plugin, said


async def test_a_skills_call_is_fitted_again_after_a_context_length_error_and_then_first(
    database_url: str, fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    plugin, said = _labeller()
    long = " ".join(f"word{i}" for i in range(1500))  # fits the assumed window
    fake_openai.script(_too_long(1000), completion("first"), completion("second"))  # type: ignore[arg-type]
    adapter = InMemoryChannel()
    async with run_bot(
        database_url=database_url, channels=[adapter], plugins=[plugin], model=client
    ).bot:
        assert await adapter.exchange(long) == ["labelled"]
        assert await adapter.exchange(long) == ["labelled"]
    assert said == ["first", "second"]
    refused, refitted, fitted_first = (r.messages[-1]["content"] for r in fake_openai.requests)
    assert refused == long
    # the newest turn is cut from the front to fit the window the server stated, and
    # the next call is fitted before it is sent (no failed request first)
    assert len(refitted) < len(long) / 3
    assert refitted.endswith("word1499")
    assert fitted_first == refitted


async def test_an_empty_stream_is_asked_again_whole_and_its_error_learnt(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    """llama.cpp's server answers a streamed prompt past its window with an empty
    stream (200, no event): asked once more without streaming, it says why."""
    empty_stream = raw(200, b"", content_type="text/event-stream")
    fake_openai.script(empty_stream, _too_long(700))  # type: ignore[arg-type]
    request = ChatRequest([{"role": "user", "content": "hi"}])
    with pytest.raises(ContextLengthError):
        async for _ in client.stream(request):
            pass
    assert [r.wants_stream for r in fake_openai.requests] == [True, False]
    assert client.model_info().context_window == 700
