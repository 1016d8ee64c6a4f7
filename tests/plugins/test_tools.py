"""Skills as tools: typed command arguments, the tool loop, confirmation of side effects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from botkit import (
    Capabilities,
    ChatRequest,
    Completion,
    ConfigError,
    Context,
    Message,
    Plugin,
    PluginError,
    QuotaExceededError,
    tool,
)
from botkit.bot import build_components
from botkit.config import parse_config
from botkit.llm import OpenAIChatClient
from botkit.testing import FakeModel, InMemoryChannel
from botkit.tools import DEFAULT_TOOL_ROUNDS, schema_of
from botkit_chat import plugin as chat
from tests.fakes.openai_server import FakeOpenAI, completion
from tests.plugins.conftest import StartBot

weather = Plugin("weather")
runs: list[Any] = []


@dataclass(frozen=True)
class ForecastArgs:
    """Arguments of /forecast.

    Attributes:
        city: the city, e.g. "Paris".
        days: how many days ahead,
            1 to 7.
    """

    city: str
    days: int = 1


@tool(weather, "forecast")
async def forecast(args: ForecastArgs, ctx: Context) -> str:
    """The weather forecast for a city."""
    runs.append(args)
    return f"Sunny in {args.city} for {args.days} day(s)"


@tool(
    weather,
    "alert",
    arguments={
        "type": "object",
        "properties": {"city": {"type": "string"}, "level": {"type": "integer", "minimum": 1}},
        "required": ["city", "level"],
    },
    side_effects=True,
    confirm="Send a level {level} storm alert for {city}?",
)
async def alert(args: dict[str, Any], ctx: Context) -> str:
    """Send a storm alert to everyone in a city."""
    runs.append(args)
    return f"Alert sent for {args['city']}"


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    runs.clear()


def _chat_requests(model: FakeModel) -> list[ChatRequest]:
    return model.requests_for("chat")


async def test_a_person_calls_a_tool_command_with_words_or_json(start_bot: StartBot) -> None:
    async with start_bot(plugins=[weather, chat]) as bot:
        assert await bot.ask("/forecast Paris days=3") == "Sunny in Paris for 3 day(s)"
        assert await bot.ask('/forecast {"city": "Rome"}') == "Sunny in Rome for 1 day(s)"
        assert await bot.ask("/forecast New York") == "Sunny in New York for 1 day(s)"
        assert await bot.ask("/forecast") == (
            "'city' is a required property\nUsage: /forecast <city> [days=…]"
        )
        assert "days: 'lots' is not of type 'integer'" in await bot.ask("/forecast Oslo days=lots")
        # a person typing a side-effect command means it: no question asked
        assert await bot.ask("/alert Oslo 2") == "Alert sent for Oslo"
    assert runs == [
        ForecastArgs("Paris", 3),
        ForecastArgs("Rome"),
        ForecastArgs("New York"),
        {"city": "Oslo", "level": 2},
    ]


async def test_the_model_calls_a_tool_and_answers_with_its_result(start_bot: StartBot) -> None:
    model = FakeModel().call_tool("forecast", {"city": "Rome", "days": 2}).reply("Rome: sunny.")
    async with start_bot(plugins=[weather, chat], model=model) as bot:
        assert await bot.ask("Weather in Rome this weekend?") == "Rome: sunny."
    first, second = _chat_requests(model)
    offered = {t["function"]["name"]: t["function"] for t in first.tools}
    assert set(offered) == {"forecast", "alert"}
    assert offered["forecast"]["description"] == "The weather forecast for a city."
    assert offered["forecast"]["parameters"]["properties"]["days"] == {
        "type": "integer",
        "description": "how many days ahead, 1 to 7.",
        "default": 1,
    }
    call, result = second.messages[-2:]
    assert call["tool_calls"][0]["function"]["name"] == "forecast"
    assert result == {
        "role": "tool",
        "tool_call_id": call["tool_calls"][0]["id"],
        "content": "Sunny in Rome for 2 day(s)",
    }
    assert runs == [ForecastArgs("Rome", 2)]


async def test_invalid_tool_arguments_go_back_to_the_model_not_into_a_crash(
    start_bot: StartBot,
) -> None:
    model = (
        FakeModel()
        .call_tool("forecast", '{"city": "Rome",')  # cut-off JSON
        .call_tool("forecast", {"days": "two"})  # wrong types, city missing
        .call_tool("nowcast", {"city": "Rome"})  # no such tool
        .call_tool("forecast", {"city": "Rome"})
        .reply("Rome: sunny.")
    )
    async with start_bot(plugins=[weather, chat], model=model) as bot:
        assert await bot.ask("weather in Rome?") == "Rome: sunny."
    results = [r.messages[-1]["content"] for r in _chat_requests(model)[1:]]
    assert "invalid arguments: the arguments are not a JSON object" in results[0]
    assert "invalid arguments" in results[1]
    assert "city" in results[1]
    assert "there is no tool named 'nowcast'" in results[2]
    assert results[3] == "Sunny in Rome for 1 day(s)"
    assert runs == [ForecastArgs("Rome")]


async def test_the_tool_loop_is_bounded_and_then_the_model_must_answer_in_words(
    start_bot: StartBot,
) -> None:
    def always_call(request: ChatRequest) -> Completion:
        from botkit import ToolCall

        return Completion(None, (ToolCall("c", "forecast", '{"city": "Oslo"}'),), None, None, "m")

    model = FakeModel().respond_with(always_call, purpose="chat")
    async with start_bot(plugins=[weather, chat], model=model) as bot:
        answer = await bot.ask("keep calling")
    requests = _chat_requests(model)
    assert len(requests) == DEFAULT_TOOL_ROUNDS + 1
    assert [r.tool_choice for r in requests] == [None] * DEFAULT_TOOL_ROUNDS + ["none"]
    assert len(runs) == DEFAULT_TOOL_ROUNDS
    assert answer == "Sorry, I could not finish that with the tools I have."


async def test_the_bound_on_rounds_is_configurable(start_bot: StartBot) -> None:
    brief = Plugin("brief")

    @brief.on_message()
    async def answer(message: Message, ctx: Context) -> Any:
        return await ctx.llm.respond(max_tool_rounds=1, stream=False)

    model = FakeModel().call_tool("forecast", {"city": "A"}).call_tool("forecast", {"city": "B"})
    model.reply("done")
    async with start_bot(plugins=[weather, brief], model=model) as bot:
        assert await bot.ask("go") == "Sorry, I could not finish that with the tools I have."
    assert [r.tool_choice for r in _chat_requests(model)] == [None, "none"]
    assert runs == [ForecastArgs("A")]


async def test_a_side_effect_tool_runs_only_after_the_user_says_yes(start_bot: StartBot) -> None:
    model = FakeModel().call_tool("alert", {"city": "Oslo", "level": 3})
    async with start_bot(plugins=[weather, chat], model=model) as bot:
        question = await bot.ask("warn Oslo about the storm")
        assert question == (
            'Send a level 3 storm alert for Oslo? Reply "yes" to go ahead or "no" to cancel.'
        )
        assert runs == []
        pending = await bot.store.state("plugin:weather").get("pending_tool_call:1")
        assert pending["tool"] == "alert"
        assert pending["arguments"] == {"city": "Oslo", "level": 3}
        # someone else's "yes" does not run it
        model.reply("Yes to what?")
        assert await bot.ask("yes", user="mallory") == "Yes to what?"
        assert runs == []
        assert await bot.ask("Yes!") == "Alert sent for Oslo"
        assert runs == [{"city": "Oslo", "level": 3}]
        # answered: a second "yes" is ordinary chat again
        model.reply("You're welcome")
        assert await bot.ask("yes") == "You're welcome"
    assert len(runs) == 1


async def test_no_cancels_and_a_new_question_drops_the_waiting_call(start_bot: StartBot) -> None:
    model = FakeModel().call_tool("alert", {"city": "Oslo", "level": 1})
    async with start_bot(plugins=[weather, chat], model=model) as bot:
        await bot.ask("alert oslo")
        assert await bot.ask("no") == "Cancelled: /alert was not run."
        model.call_tool("alert", {"city": "Bergen", "level": 1}).reply("Fine, I won't.")
        await bot.ask("alert bergen")
        assert await bot.ask("actually, never mind") == "Fine, I won't."
        model.reply("Yes what?")
        assert await bot.ask("yes") == "Yes what?"
    assert runs == []


async def test_tool_calls_stream_through_the_real_client(
    start_bot: StartBot, fake_openai: FakeOpenAI, openai_model: OpenAIChatClient
) -> None:
    fake_openai.script(
        completion(None, tool_calls=[("call_9", "forecast", '{"city": "Oslo", "days": 2}')]),
        completion("Oslo will be sunny."),
    )
    fake_openai.strict_content = True  # as llama.cpp's server: no null content
    editing = InMemoryChannel(capabilities=Capabilities(edits=True))  # streams show there
    async with start_bot(plugins=[weather, chat], model=openai_model, channels=[editing]) as bot:
        assert await bot.ask("Oslo?") == "Oslo will be sunny."
    first, second = fake_openai.requests
    assert second.messages[-2]["content"] == ""  # the assistant turn that called the tool
    assert first.wants_stream
    assert first.json["tools"][0]["function"]["name"] == "forecast"
    assert second.messages[-1] == {
        "role": "tool",
        "tool_call_id": "call_9",
        "content": "Sunny in Oslo for 2 day(s)",
    }
    assert runs == [ForecastArgs("Oslo", 2)]


@dataclass(frozen=True)
class Place:
    name: str
    country: str | None = None


@dataclass(frozen=True)
class TripArgs:
    places: tuple[Place, ...]
    mode: Literal["train", "plane"] = "train"
    notes: list[str] = field(default_factory=list, metadata={"description": "free notes"})


def test_schemas_of_dataclasses_describe_nesting_optionals_and_choices() -> None:
    schema = schema_of(TripArgs)
    assert schema["required"] == ["places"]
    assert schema["properties"]["mode"] == {
        "type": "string",
        "enum": ["train", "plane"],
        "default": "train",
    }
    assert schema["properties"]["notes"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "free notes",
    }
    place = schema["properties"]["places"]["items"]
    assert place["properties"]["country"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "default": None,
    }
    trips = Plugin("trips")

    @tool(trips, "trip")
    async def trip(args: TripArgs, ctx: Context) -> str:
        return ""

    [command] = trips.commands
    built = command.func.tool.parse('{"places": [{"name": "Oslo"}], "mode": "plane"}')  # type: ignore[attr-defined]
    assert built == TripArgs((Place("Oslo"),), "plane")


@dataclass
class Odd:
    when: complex


def test_arguments_that_cannot_be_described_fail_when_the_tool_is_declared() -> None:
    broken = Plugin("broken")
    with pytest.raises(PluginError, match="cannot be a tool argument"):

        @tool(broken, "odd")
        async def odd(args: Odd, ctx: Context) -> str:
            return ""

    with pytest.raises(PluginError, match="annotate the handler's first parameter"):

        @tool(broken, "bare")
        async def bare(args, ctx):  # type: ignore[no-untyped-def]
            return ""


gadgets = Plugin("gadgets")


@dataclass(frozen=True)
class GadgetArgs:
    on: bool
    levels: tuple[int, ...] = ()
    ratio: float = 1.0
    label: str = ""


@tool(gadgets, "gadget")
async def gadget(args: GadgetArgs, ctx: Context) -> Any:
    """Gadget that misbehaves on request."""
    runs.append(args)
    if args.label == "crash":
        raise RuntimeError("boom")
    if args.label == "skip":
        from botkit import SkipHandler

        raise SkipHandler
    if args.label == "silent":
        return None
    return "x" * 10_000 if args.label == "long" else f"{args.on} {args.levels} {args.ratio}"


async def test_command_words_are_converted_to_the_declared_types(start_bot: StartBot) -> None:
    async with start_bot(plugins=[gadgets]) as bot:
        assert await bot.ask("/gadget yes levels=1,2,3 ratio=0.5") == "True (1, 2, 3) 0.5"
        assert await bot.ask("/gadget off") == "False () 1.0"
        assert await bot.ask("/gadget maybe") == (
            "on: 'maybe' is not of type 'boolean'\nUsage: /gadget <on> [levels=…] [ratio=…] "
            "[label=…]"
        )


async def test_a_failing_tool_tells_the_model_instead_of_breaking_the_answer(
    start_bot: StartBot,
) -> None:
    model = FakeModel()
    for label in ("crash", "skip", "silent", "long"):
        model.call_tool("gadget", {"on": True, "label": label})
    model.reply("done")
    async with start_bot(plugins=[gadgets, chat], model=model) as bot:
        assert await bot.ask("try everything") == "done"
    results = [str(r.messages[-1]["content"]) for r in _chat_requests(model)[1:]]
    assert results[:3] == [
        '{"error": "the tool failed (RuntimeError)"}',
        "(no result)",
        "(done, nothing to show)",
    ]
    assert results[3].endswith(" […cut]")
    assert len(results[3]) < 8100


async def test_a_side_effect_call_with_bad_arguments_is_not_held(start_bot: StartBot) -> None:
    model = FakeModel().call_tool("alert", {"city": "Oslo", "level": 0}, content="Sure.")
    model.call_tool("alert", {"city": "Oslo", "level": 2}, content="Let me check first.")
    async with start_bot(
        plugins=[weather, chat], model=model, config={"bot": {"stream": False}}
    ) as bot:
        question = await bot.ask("alert oslo")
    first_result = _chat_requests(model)[1].messages[-1]["content"]
    assert "invalid arguments: level: 0 is less than the minimum of 1" in first_result
    assert question == (
        "Let me check first.\n\nSend a level 2 storm alert for Oslo? "
        'Reply "yes" to go ahead or "no" to cancel.'
    )
    assert runs == []


async def test_an_old_unanswered_question_is_not_confirmed_by_a_late_yes(
    start_bot: StartBot,
) -> None:
    model = FakeModel().call_tool("alert", {"city": "Oslo", "level": 1})
    async with start_bot(plugins=[weather, chat], model=model) as bot:
        await bot.ask("alert oslo")
        state = bot.store.state("plugin:weather")
        pending = await state.get("pending_tool_call:1")
        await state.set("pending_tool_call:1", {**pending, "at": "2020-01-01T00:00:00+00:00"})
        model.reply("Yes to what?")
        assert await bot.ask("yes") == "Yes to what?"
    assert runs == []


async def test_a_prompt_that_outgrows_the_window_after_tool_results_says_what_was_done(
    start_bot: StartBot,
) -> None:
    from botkit import ContextLengthError

    model = FakeModel().call_tool("forecast", {"city": "Oslo"})
    model.fail(ContextLengthError("llm", "maximum context length is 8192 tokens"))
    async with start_bot(plugins=[weather, chat], model=model) as bot:
        assert await bot.ask("Oslo?") == (
            "I ran /forecast(city='Oslo'): \"Sunny in Oslo for 1 day(s)\". "
            "But I couldn't write a full answer just now."
        )
        stored = await bot.stored()
    assert stored.status == "failed"
    assert "the tool results no longer fit" in str(stored.error)
    assert len(runs) == 1  # the tool ran once; nothing was re-run by a re-fit


def test_json_schema_declarations_are_checked() -> None:
    bad = Plugin("bad")
    with pytest.raises(PluginError, match='must have "type": "object"'):
        tool(bad, "a", arguments={"type": "string"})(forecast)
    with pytest.raises(PluginError, match="invalid JSON schema"):
        tool(bad, "b", arguments={"type": "object", "properties": {"x": {"type": 5}}})(forecast)
    with pytest.raises(PluginError, match="is not a dataclass"):
        tool(bad, "c", arguments=int)(forecast)


@dataclass(frozen=True)
class SpendArgs:
    """Arguments of /spend."""


async def test_a_budget_refusal_inside_a_tool_refuses_the_answer_not_the_tool(
    start_bot: StartBot,
) -> None:
    """A tool that makes a model call of its own and is refused by a budget does not
    'fail' for the model to work around: the whole answer is refused, with the reason."""
    spender = Plugin("spender")

    @tool(spender, name="spend")
    async def spend(args: SpendArgs, ctx: Context) -> str:
        """Spend something."""
        raise QuotaExceededError("budget", "your daily limit of 10 tokens is used up")

    model = FakeModel().call_tool("spend", {}).reply("never asked")
    async with start_bot(plugins=[spender, chat], model=model) as bot:
        answer = await bot.ask("spend it")
    assert answer == "Sorry, I can't answer right now: your daily limit of 10 tokens is used up"
    assert len(_chat_requests(model)) == 1  # the model was not asked to work around it


def test_a_tool_choice_naming_no_offered_tool_is_a_config_error() -> None:
    config = parse_config({"plugins": {"chat": {"tool_choice": "forcast"}}}, environ={})
    with pytest.raises(ConfigError) as raised:
        build_components(config)
    assert str(raised.value).startswith(
        "plugins.chat.tool_choice: no plugin offers a tool named 'forcast'"
    )
    build_components(parse_config({"plugins": {"chat": {"tool_choice": "auto"}}}, environ={}))
