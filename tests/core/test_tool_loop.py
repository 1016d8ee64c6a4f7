"""The tool loop on its own: no bot, no Context, no store; a fake model and a host that
records what the loop asked of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from botkit import ChatRequest, Context, Plugin, Reply, tool
from botkit.llm import ToolCall
from botkit.messages import ConversationRef, Message, Sender
from botkit.plugin import HandlerResult
from botkit.testing import FakeModel
from botkit.tools import Tool, ToolCommand, ToolHost, run_tool_loop
from botkit.turn import Turn

kit = Plugin("kit")


@dataclass(frozen=True)
class CityArgs:
    city: str


@tool(kit, "forecast")
async def forecast(args: CityArgs, ctx: Context) -> str:
    """The weather in a city (the host runs it here, not this body)."""
    raise AssertionError("run through the host")  # pragma: no cover


@tool(kit, "evacuate", side_effects=True)
async def evacuate(args: CityArgs, ctx: Context) -> str:
    """Evacuate a city (asks first)."""
    raise AssertionError("never run by the loop")  # pragma: no cover


TOOLS = [c.func.tool for c in kit.commands if isinstance(c.func, ToolCommand)]


@dataclass
class RecordingHost:
    """A ``ToolHost`` that runs tools as ``Sunny in <city>`` and records every request."""

    shown: list[str] = field(default_factory=list)
    ran: list[tuple[str, Any]] = field(default_factory=list)
    held: list[tuple[str, Any]] = field(default_factory=list)
    dropped: list[list[str]] = field(default_factory=list)

    async def show(self, texts: AsyncIterator[str]) -> None:
        self.shown.append("".join([t async for t in texts]))

    async def run(self, tool: Tool, arguments: Any, call: ToolCall) -> HandlerResult:
        self.ran.append((tool.name, arguments))
        return f"Sunny in {arguments.city}"

    async def hold(self, tool: Tool, arguments: Any) -> str:
        self.held.append((tool.name, arguments))
        return f"Evacuate {arguments.city}?"

    async def drop_held(self, tools: Sequence[Tool]) -> None:
        self.dropped.append([t.name for t in tools])


def _turn() -> Turn:
    ref = ConversationRef("test", "c1")
    return Turn(Message(ref, Sender("u1"), "hi", "e1"), conversation_id=1)


def _request() -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "user", "content": "weather?"}],
        tools=[t.definition() for t in TOOLS],
        purpose="chat",
    )


async def test_the_loop_runs_a_call_through_its_host_and_asks_the_model_again() -> None:
    model = FakeModel().call_tool("forecast", {"city": "Oslo"}).reply("Oslo: sunny.")
    host, turn = RecordingHost(), _turn()
    checked: ToolHost = host  # the fake is a ToolHost as far as mypy is concerned
    answer = await run_tool_loop(
        model, checked, _request(), TOOLS, turn=turn, stream=False, max_rounds=4
    )
    assert answer == Reply("Oslo: sunny.")
    assert host.dropped == [["forecast", "evacuate"]]  # a new answer drops a waiting call
    assert host.ran == [("forecast", CityArgs("Oslo"))]
    follow_up = model.requests[1]
    assert follow_up.messages[-1]["role"] == "tool"
    assert follow_up.messages[-1]["content"] == "Sunny in Oslo"
    assert turn.tool_rounds == 1
    assert turn.done == ["ran /forecast(city='Oslo'): \"Sunny in Oslo\""]


async def test_a_side_effect_call_is_held_by_the_host_and_ends_the_answer_with_its_question() -> (
    None
):
    model = FakeModel().call_tool("evacuate", {"city": "Oslo"}, content="Right away.")
    host = RecordingHost()
    answer = await run_tool_loop(
        model, host, _request(), TOOLS, turn=_turn(), stream=False, max_rounds=4
    )
    assert answer == Reply("Right away.\n\nEvacuate Oslo?", markup="plain")
    assert host.held == [("evacuate", CityArgs("Oslo"))]
    assert host.ran == []
    assert len(model.requests) == 1  # the model is not asked again until the "yes"


async def test_streamed_text_is_shown_through_the_host_and_nothing_is_returned() -> None:
    model = FakeModel().call_tool("forecast", {"city": "Rome"}).reply("Rome is sunny today.")
    host = RecordingHost()
    answer = await run_tool_loop(
        model, host, _request(), TOOLS, turn=_turn(), stream=True, max_rounds=4
    )
    assert answer is None
    assert host.shown == ["Rome is sunny today."]
    assert host.ran == [("forecast", CityArgs("Rome"))]


async def test_at_the_bound_the_model_must_answer_in_words_and_bad_calls_go_back_to_it() -> None:
    model = FakeModel().call_tool("forecast", {"town": "Oslo"}).call_tool("nowcast", {})
    model.reply("I could not tell.")
    host, turn = RecordingHost(), _turn()
    request = _request()
    answer = await run_tool_loop(
        model, host, request, TOOLS, turn=turn, stream=False, max_rounds=2
    )
    assert answer == Reply("I could not tell.")
    assert [r.tool_choice for r in model.requests] == [None, None, "none"]
    told = [str(r.messages[-1]["content"]) for r in model.requests[1:]]
    assert "invalid arguments" in told[0]
    assert "there is no tool named 'nowcast'" in told[1]
    assert host.ran == []
    assert turn.done == []  # nothing ran, so a failure would be the plain apology
