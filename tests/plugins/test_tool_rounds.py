"""Tools that never repeat a side effect: each call stored before the model is asked
again, replayed (not run again) when the answer is tried again, named when it fails."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from botkit import (
    ChatRequest,
    Completion,
    ConfigError,
    Context,
    Message,
    Plugin,
    QuotaExceededError,
    RequestRejectedError,
    ServiceError,
    ServiceUnavailableError,
    tool,
)
from botkit.dispatch import APOLOGY
from botkit.llm import CallRecorder, OpenAIChatClient
from botkit.store import Store, ToolCallRecord
from botkit.testing import FakeModel, TestBot
from botkit_chat import plugin as chat
from tests.fakes.openai_server import FakeOpenAI, completion
from tests.plugins.conftest import StartBot

notes = Plugin("notes")
saved: list[str] = []
gate: list[asyncio.Event] = []  # when set, the tool waits on it (a process stopped mid-call)


@dataclass(frozen=True)
class NoteArgs:
    text: str


@tool(notes, "note")
async def note(args: NoteArgs, ctx: Context) -> str:
    """Save a note (done at once: no confirmation asked)."""
    saved.append(args.text)
    if gate:
        await gate[0].wait()
    return f"Saved note #{len(saved)}"


@tool(notes, "share", side_effects=True, confirm="Share {text}?")
async def share(args: NoteArgs, ctx: Context) -> str:
    """Share a note with everyone (asks first)."""
    saved.append(f"shared {args.text}")
    if gate:
        await gate[0].wait()
    return f"Shared {args.text}"


@pytest.fixture(autouse=True)
def _clear() -> None:
    saved.clear()
    gate.clear()


class StoppingModel(FakeModel):
    """A fake model that hangs at its ``hang_at``-th request, as a process stopped while
    waiting for the model would; ``seen`` keeps what the store held at each request."""

    def __init__(self, hang_at: int = 0) -> None:
        super().__init__()
        self.hang_at = hang_at
        self.store: Store | None = None
        self.seen: list[list[ToolCallRecord]] = []

    async def complete(  # the stream goes through here too
        self, request: ChatRequest, *, record: CallRecorder | None = None
    ) -> Completion:
        if self.store is not None:
            self.seen.append(await self.store.tool_calls.of([1]))
        if len(self.requests) + 1 == self.hang_at:
            self.requests.append(request)
            await asyncio.Event().wait()
        return await super().complete(request, record=record)


async def _stop_mid_answer(bot: TestBot) -> None:
    """Stop the bot's work at once: what was under way stays unfinished in the store."""
    await bot.bot.dispatcher.stop(0)


async def _eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.02)


def _chat(model: FakeModel) -> list[ChatRequest]:
    return model.requests_for("chat")


async def test_each_call_is_stored_with_its_message_before_the_model_is_asked_again(
    start_bot: StartBot,
) -> None:
    model = StoppingModel()
    model.call_tool("note", {"text": "milk"}, content="Noting.").reply("Noted: milk.")
    config = {"bot": {"stream": False}}
    async with start_bot(plugins=[notes, chat], model=model, config=config) as bot:
        model.store = bot.store
        assert await bot.ask("remember milk") == "Noted: milk."
    before_first, before_follow_up = model.seen
    assert before_first == []
    [stored] = before_follow_up
    call = _chat(model)[1].messages[-2]["tool_calls"][0]
    assert (stored.message_id, stored.call_id, stored.round) == (1, call["id"], 0)
    assert (stored.status, stored.result, stored.said) == ("done", "Saved note #1", "Noting.")


async def test_an_answer_retried_after_an_outage_replays_its_tool_rounds_not_the_tools(
    start_bot: StartBot,
) -> None:
    model = FakeModel().call_tool("note", {"text": "milk"}, content="Noting.")
    model.fail(ServiceUnavailableError("llm", "down"))  # the follow-up: an outage
    model.reply("Noted: milk.")  # the retry
    config = {"bot": {"stream": False, "outage_retry": 0.05, "delay_notice": ""}}
    async with start_bot(plugins=[notes, chat], model=model, config=config) as bot:
        await bot.send("remember milk")
        await _eventually(lambda: [s.text for s in bot.sent] == ["Noted: milk."])
        stored = await bot.stored()
    assert saved == ["milk"]  # run once, though the answer was tried twice
    assert stored.status == "done"
    first, follow_up, retry = _chat(model)
    assert retry.messages[-2:] == follow_up.messages[-2:]  # the round, as it happened
    assert retry.messages[-2] == {
        "role": "assistant",
        "content": "Noting.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "note", "arguments": '{"text": "milk"}'},
            }
        ],
    }
    assert retry.messages[-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "Saved note #1",
    }
    assert retry.messages[:-2] == first.messages


async def test_an_answer_resumed_after_a_stop_replays_the_tools_that_ran(
    start_bot: StartBot, database_url: str
) -> None:
    first_model = StoppingModel(hang_at=2)  # stops waiting for the follow-up
    first_model.call_tool("note", {"text": "milk"})
    async with start_bot(plugins=[notes, chat], model=first_model) as bot:
        await bot.channel.receive("remember milk")
        await _eventually(lambda: len(first_model.requests) == 2)
        await _stop_mid_answer(bot)
    assert saved == ["milk"]
    model = FakeModel().reply("Noted: milk.")
    async with start_bot(plugins=[notes, chat], model=model) as bot:
        await _eventually(lambda: [s.text for s in bot.sent] == ["Noted: milk."])
        await bot.idle()
    assert saved == ["milk"]  # not saved again by the resumed answer
    [resumed] = _chat(model)
    assert resumed.messages[-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "Saved note #1",
    }


async def test_a_call_cut_short_by_a_stop_is_not_run_again_and_may_have_happened(
    start_bot: StartBot,
) -> None:
    gate.append(asyncio.Event())  # the tool never returns: the process stops mid-call
    first_model = FakeModel().call_tool("note", {"text": "milk"})
    async with start_bot(plugins=[notes, chat], model=first_model) as bot:
        await bot.channel.receive("remember milk")
        await _eventually(lambda: saved == ["milk"])
        await _stop_mid_answer(bot)
    gate.clear()
    model = FakeModel().fail(RequestRejectedError("llm", "bad request"))
    async with start_bot(plugins=[notes, chat], model=model) as bot:
        await _eventually(lambda: len(bot.sent) == 1)
        await bot.idle()
        [answer] = [s.text for s in bot.sent]
    assert saved == ["milk"]
    told = _chat(model)[0].messages[-1]
    assert told["role"] == "tool"
    assert "cut short" in told["content"]
    assert "may or may not have taken effect" in told["content"]
    assert answer == (
        "I may have run /note(text='milk') (it was cut short). "
        "But I couldn't write a full answer just now."
    )


async def test_a_confirmed_call_cut_short_by_a_stop_is_not_run_again_by_the_resumed_yes(
    start_bot: StartBot,
) -> None:
    first_model = FakeModel().call_tool("share", {"text": "milk"})
    async with start_bot(plugins=[notes, chat], model=first_model) as bot:
        question = await bot.ask("share milk")
        assert question == 'Share milk? Reply "yes" to go ahead or "no" to cancel.'
        gate.append(asyncio.Event())  # the tool never returns: the process stops mid-call
        yes = await bot.channel.receive("yes")
        await _eventually(lambda: saved == ["shared milk"])
        await _stop_mid_answer(bot)
    gate.clear()
    async with start_bot(plugins=[notes, chat]) as bot:
        await _eventually(lambda: len(bot.sent) == 1)
        await bot.idle()
        [answer] = [s.text for s in bot.sent]
        [stored] = await bot.store.tool_calls.of([yes])
    assert saved == ["shared milk"]
    assert answer == (
        "I may have run /share(text='milk') already (it was cut short), so I did not run it again."
    )
    assert (stored.name, stored.status) == ("share", "running")


async def test_a_confirmed_call_is_stored_with_the_yes_that_ran_it(start_bot: StartBot) -> None:
    model = FakeModel().call_tool("share", {"text": "milk"})
    async with start_bot(plugins=[notes, chat], model=model) as bot:
        await bot.ask("share milk")
        assert await bot.ask("yes") == "Shared milk"
        [stored] = await bot.store.tool_calls.of([bot.last_message_id])
    assert (stored.name, stored.arguments, stored.status, stored.result) == (
        "share",
        '{"text": "milk"}',
        "done",
        "Shared milk",
    )


@pytest.mark.parametrize(
    ("failure", "config", "ending"),
    [
        (RequestRejectedError("llm", "bad request"), {}, "But I couldn't write a full answer"),
        # an outage that outlasts the horizon
        (ServiceUnavailableError("llm", "down"), {"outage_horizon": 0}, "But I couldn't"),
        (
            QuotaExceededError("llm", "the daily budget is spent"),
            {},
            "But I can't write a full answer right now: the daily budget is spent",
        ),
    ],
)
async def test_an_answer_that_fails_after_a_tool_ran_says_what_was_done(
    start_bot: StartBot, failure: ServiceError, config: dict[str, Any], ending: str
) -> None:
    model = FakeModel().call_tool("note", {"text": "milk"}).fail(failure)
    settings = {"bot": {"stream": False, **config}}
    async with start_bot(plugins=[notes, chat], model=model, config=settings) as bot:
        answer = await bot.ask("remember milk")
        stored = await bot.stored()
        # a second call in one answer is listed with the first
        model.call_tool("note", {"text": "eggs"}).call_tool("note", {"text": "tea"})
        model.fail(RequestRejectedError("llm", "bad request"))
        both = await bot.ask("and eggs and tea")
    assert answer.startswith("I ran /note(text='milk'): \"Saved note #1\". ")
    assert ending in answer
    assert answer != APOLOGY
    assert stored.status == "failed"  # recorded as failed all the same
    assert both == (
        "Here is what I did:\n"
        "- ran /note(text='eggs'): \"Saved note #2\"\n"
        "- ran /note(text='tea'): \"Saved note #3\"\n"
        "But I couldn't write a full answer just now."
    )
    assert saved == ["milk", "eggs", "tea"]


async def test_a_failure_before_any_tool_ran_is_still_the_plain_apology(
    start_bot: StartBot,
) -> None:
    model = FakeModel().call_tool("nothing", {}).fail(RequestRejectedError("llm", "bad"))
    async with start_bot(plugins=[notes, chat], model=model) as bot:
        assert await bot.ask("remember nothing") == APOLOGY


async def test_tool_choice_is_set_per_plugin_and_only_forces_the_first_request(
    start_bot: StartBot,
) -> None:
    model = FakeModel().call_tool("note", {"text": "milk"}).reply("Noted.")
    settings = {"chat": {"tool_choice": "note"}}
    async with start_bot(plugins=[notes, chat], model=model, settings=settings) as bot:
        assert await bot.ask("milk") == "Noted."
    first, follow_up = _chat(model)
    assert first.tool_choice == {"type": "function", "function": {"name": "note"}}
    assert follow_up.tool_choice == "auto"


async def test_tool_choice_is_set_per_request(start_bot: StartBot) -> None:
    asked = Plugin("asked")

    @asked.on_message()
    async def answer(message: Message, ctx: Context) -> Any:
        choice = message.text  # "none", "required", or a tool's name
        return await ctx.llm.respond(tool_choice=choice, stream=False, max_tool_rounds=2)

    model = FakeModel().reply("ok").call_tool("note", {"text": "x"}).reply("done")
    model.call_tool("note", {"text": "y"}).call_tool("note", {"text": "z"})
    async with start_bot(plugins=[notes, asked], model=model) as bot:
        assert await bot.ask("none") == "ok"
        assert await bot.ask("required") == "done"
        assert await bot.ask("auto") == "echo: auto"  # made to answer in words at the bound
        assert await bot.ask("nowcast") == APOLOGY  # names no offered tool: a bug, logged
    assert [r.tool_choice for r in _chat(model)] == [
        "none",
        "required",
        "auto",
        "auto",
        "auto",
        "none",
    ]


def test_a_tool_choice_setting_that_cannot_be_one_fails_when_parsed() -> None:
    from botkit_chat import ChatPluginSettings

    assert ChatPluginSettings(tool_choice="required").tool_choice == "required"
    with pytest.raises(ConfigError, match=r"plugins\.chat\.tool_choice"):
        ChatPluginSettings(tool_choice="Call the note tool")


async def test_tool_choice_reaches_the_server_and_replays_survive_a_strict_server(
    start_bot: StartBot, fake_openai: FakeOpenAI, openai_model: OpenAIChatClient
) -> None:
    fake_openai.strict_content = True  # as llama.cpp's server: no null content
    fake_openai.script(
        completion(None, tool_calls=[("call_7", "note", '{"text": "milk"}')]),
        completion("Noted."),
    )
    settings = {"chat": {"tool_choice": "required"}}
    async with start_bot(plugins=[notes, chat], model=openai_model, settings=settings) as bot:
        assert await bot.ask("milk") == "Noted."
    first, second = fake_openai.requests
    assert first.json["tool_choice"] == "required"
    assert second.json["tool_choice"] == "auto"
    assert saved == ["milk"]
