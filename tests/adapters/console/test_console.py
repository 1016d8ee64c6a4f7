"""The console channel, in a terminal and through a pipe."""

from __future__ import annotations

import asyncio
import io
import queue
import re
from typing import TextIO, cast

from botkit import Context, ConversationRef, Message, Plugin, Reply
from botkit.testing import run_bot
from botkit_console import ConsoleAdapter, ConsoleSettings


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
    async with run_bot(
        database_url=database_url, channels=[console], plugins=[_plugin()], model="config"
    ).bot as bot:
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
    async with run_bot(
        database_url=database_url, channels=[console], plugins=[_plugin()], model="config"
    ).bot as bot:
        await asyncio.wait_for(bot.run_until_stopped(), 20)
    shown = out.getvalue()
    # a spinner while the bot works, erased before the answer
    assert re.match(r"> \r⠋ (\r. )*\r\x1b\[Kbot: you", shown)
    text = re.sub(r"\r. ", "", shown).replace("\r\x1b[K", "")
    assert text.startswith("> bot: you")
    assert "bot: you wrote hello there" in text.replace("\n", "")
    assert text.endswith("> \n")  # prompted again after the answer; the exit ends the line


class _Terminal:
    """Standard input that stays open until told (a person who has not typed yet)."""

    def __init__(self) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()

    def __iter__(self) -> _Terminal:
        return self

    def __next__(self) -> str:
        line = self.lines.get()
        if line is None:
            raise StopIteration
        return line


async def test_a_message_the_bot_sends_on_its_own_starts_a_fresh_line_and_prompts_again(
    database_url: str,
) -> None:
    out, stdin = io.StringIO(), _Terminal()
    console = ConsoleAdapter(
        "console",
        ConsoleSettings(prompt="> ", bot_label="bot: "),
        stdin=cast(TextIO, stdin),
        stdout=out,
        interactive=True,
    )
    async with run_bot(
        database_url=database_url, channels=[console], plugins=[_plugin()], model="config"
    ).bot:
        for _ in range(500):  # until the prompt shows
            if out.getvalue():
                break
            await asyncio.sleep(0.01)
        reminder = Reply("time for tea")
        await console.send(ConversationRef("console", "x"), reminder, delivery_id="r1")
        stdin.lines.put(None)  # Ctrl-D
        await asyncio.wait_for(console.finished(), 20)
    assert out.getvalue() == "> \nbot: time for tea\n> \n"
