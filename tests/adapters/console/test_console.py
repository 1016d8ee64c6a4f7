"""The console channel, in a terminal and through a pipe."""

from __future__ import annotations

import asyncio
import io

from botkit import Context, Message, Plugin
from botkit_console import ConsoleAdapter, ConsoleSettings
from tests.fakes.bots import make_bot


def _plugin() -> Plugin:
    plugin = Plugin("words")

    async def words(text: str) -> object:
        for i, word in enumerate(text.split()):
            await asyncio.sleep(0)
            yield word if i == 0 else " " + word

    @plugin.on_message()
    async def stream_back(message: Message, ctx: Context) -> None:
        await ctx.stream(words(f"you wrote {message.text}"))  # type: ignore[arg-type]

    return plugin


async def test_a_pipe_gets_one_reply_line_per_input_line_then_the_input_ends(
    database_url: str,
) -> None:
    out = io.StringIO()
    console = ConsoleAdapter(
        "console", stdin=io.StringIO("first\n\nsecond line\n"), stdout=out, interactive=False
    )
    async with make_bot(database_url, {"console": console}, plugins=[_plugin()]) as bot:
        await asyncio.wait_for(bot.run_until_stopped(), 20)
    assert out.getvalue().splitlines() == ["you wrote first", "you wrote second line"]


async def test_a_terminal_shows_a_prompt_and_streams_the_answer(database_url: str) -> None:
    out = io.StringIO()
    console = ConsoleAdapter(
        "console",
        ConsoleSettings(prompt="> ", bot_label="bot: "),
        stdin=io.StringIO("hello there\n"),
        stdout=out,
        interactive=True,
    )
    async with make_bot(database_url, {"console": console}, plugins=[_plugin()]) as bot:
        await asyncio.wait_for(bot.run_until_stopped(), 20)
    text = out.getvalue()
    assert text.startswith("> bot: you")
    assert "bot: you wrote hello there" in text.replace("\n", "")
    assert text.rstrip().endswith(">")  # prompted again after the answer
