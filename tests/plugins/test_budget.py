"""Budgets: limits checked before each model call, refused before anything is sent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from botkit import Capabilities, ConfigError
from botkit.bot import build_plugins
from botkit.config import parse_config
from botkit.llm import ModelTable, OpenAIChatClient
from botkit.testing import FakeModel, InMemoryChannel
from botkit_budget import plugin as budget
from botkit_budget.plugin import _period
from botkit_chat import plugin as chat
from tests.fakes.openai_server import FakeOpenAI, completion, hang, stream
from tests.plugins.conftest import StartBot

NO_STREAM = {"bot": {"stream": False}}


def _limits(*limits: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"budget": {"limits": list(limits), **extra}}


async def test_a_user_over_the_daily_token_limit_is_refused_before_the_call_is_made(
    start_bot: StartBot, fake_openai: FakeOpenAI, openai_model: OpenAIChatClient
) -> None:
    fake_openai.script(completion("First answer.", usage=(900, 150)))
    settings = _limits({"scope": "user", "period": "day", "tokens": 1000})
    async with start_bot(
        plugins=[budget, chat], model=openai_model, settings=settings, config=NO_STREAM
    ) as bot:
        assert await bot.ask("hello", user="ann") == "First answer."
        assert len(fake_openai.requests) == 1
        refused = await bot.ask("and again", user="ann")
        assert len(fake_openai.requests) == 1  # the server never heard of it
        # another user has a budget of their own
        assert await bot.ask("hi", user="bob", chat="bobs") == "echo: hi"
    assert refused.startswith(
        "Sorry, I can't answer right now: your daily limit of 1,000 tokens is used up "
        "(1,050 used); it resets at "
    )
    assert refused.endswith("00:00 UTC")


async def test_a_token_limit_counts_the_prompt_about_to_be_sent(start_bot: StartBot) -> None:
    model = FakeModel()
    settings = _limits({"scope": "user", "period": "day", "tokens": 50})
    async with start_bot(plugins=[budget, chat], model=model, settings=settings) as bot:
        assert await bot.ask("short") == "echo: short"
        long = "word " * 100
        assert "your daily limit of 50 tokens is used up" in await bot.ask(long)
    assert len(model.requests) == 1


async def test_dollar_limits_per_channel_and_for_the_whole_bot(start_bot: StartBot) -> None:
    model = FakeModel(input_price_per_1k="1", output_price_per_1k="1")
    model.reply("costly", usage=(500, 500))  # $1.00
    settings = _limits(
        {"scope": "channel", "period": "month", "usd": 1.0, "channels": ["test"]},
        {"scope": "bot", "period": "day", "usd": 1.5},
    )
    async with start_bot(
        plugins=[budget, chat], model=model, settings=settings, channels=["test", "other"]
    ) as bot:
        assert await bot.ask("a", user="ann") == "costly"
        refused = await bot.ask("b", user="bob")
        assert "the test channel's monthly limit of $1.00 is spent ($1.00 used)" in refused
        # the limit is the test channel's: another channel still has room in the bot's
        model.reply("cheap", usage=(250, 250))  # $0.50, the bot at $1.50
        assert await bot.ask("c", channel="other") == "cheap"
        refused = await bot.ask("d", channel="other")
        assert "the bot's daily limit of $1.50 is spent ($1.50 used)" in refused
    assert len(model.requests) == 2


async def test_concurrent_calls_cannot_together_pass_a_dollar_limit(
    start_bot: StartBot, fake_openai: FakeOpenAI
) -> None:
    """Ten $1.00 calls at once against a $1/day limit for the whole bot, each taking a
    moment at the server: each reserves its worst case before it is made, so only the
    first is made (without reservations all ten were)."""
    prices = {"input_price_per_1k": "1", "output_price_per_1k": "1"}
    model = OpenAIChatClient(
        fake_openai.url,
        None,
        "pricey",
        models=ModelTable.from_config({"pricey": prices}),
        max_retries=0,
    )
    fake_openai.script(
        *[hang(0.2, then=completion("costly", usage=(500, 500))) for _ in range(10)]
    )
    settings = _limits({"scope": "bot", "period": "day", "usd": 1.0})
    async with start_bot(
        plugins=[budget, chat], model=model, settings=settings, config=NO_STREAM
    ) as bot:
        answers = await asyncio.gather(
            *(bot.ask(f"question {i}", user=f"u{i}", chat=f"c{i}") for i in range(10))
        )
        report = await bot.ask("/budget", user="u0", chat="c0")
    assert len(fake_openai.requests) == 1
    assert answers.count("costly") == 1
    refusals = [a for a in answers if a != "costly"]
    assert all("the bot's daily limit of $1.00" in a for a in refusals), refusals
    assert "$1.00 of $1.00" in report, report  # the real usage, stored; nothing held


async def test_unlimited_users_and_the_budget_command(start_bot: StartBot) -> None:
    model = FakeModel().reply("spent", usage=(100, 100))
    settings = _limits({"scope": "user", "period": "day", "tokens": 150}, unlimited_users=["boss"])
    async with start_bot(plugins=[budget, chat], model=model, settings=settings) as bot:
        assert await bot.ask("x", user="boss") == "spent"
        assert await bot.ask("y", user="boss") == "echo: y"
        assert await bot.ask("/budget", user="boss") == "No spending limit applies to you."
        report = await bot.ask("/budget", user="ann")
    assert report.startswith("Your daily limit: 0 tokens of 150 tokens used (resets at ")


async def test_background_calls_are_only_held_to_the_bots_own_limits(start_bot: StartBot) -> None:
    from botkit.context import PluginRuntime
    from botkit_budget.plugin import BudgetSettings, Limit, check_limits

    async with start_bot(plugins=[budget]) as bot:
        runtime = PluginRuntime(bot.bot.runtime, "budget")
        settings = BudgetSettings(
            limits=(Limit("user", "day", tokens=1), Limit("bot", "day", tokens=10))
        )
        assert await check_limits(runtime, settings, None, 5) is None
        assert "the bot's daily limit of 10 tokens" in str(
            await check_limits(runtime, settings, None, 11)
        )


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ({"scope": "user", "period": "day"}, "give exactly one of tokens and usd"),
        ({"scope": "user", "period": "day", "tokens": 5, "usd": 1.0}, "exactly one"),
        (
            {"scope": "user", "period": "day", "tokens": 0},
            r"limits\[0\]\.tokens: must be positive",
        ),
        ({"scope": "team", "period": "day", "tokens": 5}, "must be one of 'user'"),
    ],
)
async def test_bad_limits_stop_the_bot_at_start(
    start_bot: StartBot, limit: dict[str, Any], message: str
) -> None:
    with pytest.raises(
        ConfigError, match=message.replace("must be positive", "must be a positive")
    ):
        async with start_bot(plugins=[budget], settings=_limits(limit)):
            pass


def test_periods_begin_at_local_midnight_and_on_the_first_of_the_month() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)  # the day clocks go forward
    start, reset = _period("day", now, berlin)
    assert start == datetime(2024, 3, 30, 23, 0, tzinfo=UTC)
    assert reset == datetime(2024, 4, 1, 0, 0, tzinfo=berlin)
    start, reset = _period("month", now, berlin)
    assert start == datetime(2024, 2, 29, 23, 0, tzinfo=UTC)
    assert reset == datetime(2024, 4, 1, tzinfo=berlin)


async def test_streamed_answers_without_usage_add_up_to_a_token_limit(
    start_bot: StartBot, fake_openai: FakeOpenAI, openai_model: OpenAIChatClient
) -> None:
    """llama.cpp's server sends no usage in a stream: botkit counts the tokens itself,
    stores them marked as estimates, and a token budget adds them up over the day."""
    words = tuple(f" word{i}" for i in range(60))
    fake_openai.default = stream(("An answer", *words), usage=None)
    settings = _limits({"scope": "user", "period": "day", "tokens": 300})
    editing = InMemoryChannel(capabilities=Capabilities(edits=True))  # streams show there
    async with start_bot(
        plugins=[budget, chat], model=openai_model, settings=settings, channels=[editing]
    ) as bot:
        answers = [await bot.ask(f"question {n}") for n in range(6)]
        [row] = await bot.store.usage.report()
    refused = [a for a in answers if "your daily limit of 300 tokens is used up" in a]
    assert refused, answers  # the streamed calls were counted, so the limit was reached
    assert answers[0].startswith("An answer word0")
    assert row.calls == len(fake_openai.requests) == answers.index(refused[0])
    assert row.estimated_calls == row.calls
    assert row.completion_tokens >= 60 * row.calls


def test_a_dollar_limit_on_a_model_without_prices_is_a_config_error() -> None:
    config = parse_config(
        {
            "llm": {"model": "tiny-chat", "base_url": "http://127.0.0.1:9/v1"},
            "plugins": {
                "budget": {"limits": [{"scope": "bot", "period": "day", "usd": 1.0}]},
            },
        },
        environ={},
    )
    with pytest.raises(ConfigError) as raised:
        build_plugins(config)
    assert str(raised.value).startswith("plugins.budget.limits[0].usd: the model 'tiny-chat'")
    assert "has no prices" in str(raised.value)
    # with prices set, or with a token limit, it starts
    priced = parse_config(
        {
            "llm": {
                "model": "tiny-chat",
                "base_url": "http://127.0.0.1:9/v1",
                "models": {
                    "tiny-chat": {"input_price_per_1k": "0.001", "output_price_per_1k": "0.002"}
                },
            },
            "plugins": {
                "budget": {"limits": [{"scope": "bot", "period": "day", "usd": 1.0}]},
            },
        },
        environ={},
    )
    build_plugins(priced)


async def test_the_budget_command_does_not_say_zero_dollars_for_an_unpriced_model(
    start_bot: StartBot,
) -> None:
    model = FakeModel(input_price_per_1k=None, output_price_per_1k=None)
    settings = _limits({"scope": "user", "period": "day", "usd": 1})
    async with start_bot(plugins=[budget, chat], model=model, settings=settings) as bot:
        shown = await bot.ask("/budget")
    assert "$0.00" not in shown
    assert "an unknown amount (the model has no prices) of $1.00 used" in shown
