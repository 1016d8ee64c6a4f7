"""Scenario: the store transactions one answer costs, streamed and plain.

A real ``Bot`` with botkit's defaults (streaming on) answers messages on an in-memory
channel that can edit a message (streams show there) and on one that cannot (then the
model is asked for the whole answer: nothing is streamed). Every store write and
read is counted while the answers run; the model streams 30 words with the channel's
edit pace at zero (the worst case: an edit per word). The line gives writes and reads
per answer for both, and how many writes a streamed answer costs beyond a plain one
(the issue's target: at most one).
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from typing import Any

from bench._util import Options, sqlite_url
from botkit import Capabilities
from botkit.llm import ModelTable, OpenAIChatClient
from botkit.secrets import Secret
from botkit.store._section import Section
from botkit.testing import InMemoryChannel, run_bot
from tests.fakes.openai_server import FakeOpenAI, echo

WORDS = 30


async def _per_answer(opts: Options, *, edits: bool, answers: int) -> tuple[float, float]:
    """Writes and reads per answer on a channel that can (or cannot) edit."""
    counts: collections.Counter[str] = collections.Counter()
    write, read = Section._write, Section._read

    def counting(kind: str, real: Callable[..., Awaitable[Any]]) -> Any:
        async def counted(self: Section, what: str, op: Any) -> Any:
            counts[kind] += 1
            return await real(self, what, op)

        return counted

    Section._write = counting("write", write)  # type: ignore[method-assign]
    Section._read = counting("read", read)  # type: ignore[method-assign]
    try:
        async with FakeOpenAI() as fake:
            fake.default = echo(pad_words=WORDS)
            model = OpenAIChatClient(
                fake.url, Secret("sk-bench"), "gpt-4o-mini", models=ModelTable()
            )
            capabilities = Capabilities(edits=edits, max_length=4000, edit_interval=0.0)
            adapter = InMemoryChannel(capabilities=capabilities)
            database = sqlite_url(opts.workdir, "transactions").replace("+aiosqlite", "")
            async with model, run_bot(database_url=database, channels=[adapter], model=model).bot:
                await adapter.exchange("warm up")
                counts.clear()
                for n in range(answers):
                    await adapter.exchange(f"question {n}")
                return counts["write"] / answers, counts["read"] / answers
    finally:
        Section._write, Section._read = write, read  # type: ignore[method-assign]


async def run(opts: Options) -> str:
    """``transactions``: store writes and reads per answer, streamed against plain."""
    answers = 5 if opts.quick else 50
    plain_w, plain_r = await _per_answer(opts, edits=False, answers=answers)
    live_w, live_r = await _per_answer(opts, edits=True, answers=answers)
    return (
        f"per answer: plain {plain_w:.1f} writes, {plain_r:.1f} reads; streamed ({WORDS} "
        f"words, an edit per word) {live_w:.1f} writes, {live_r:.1f} reads; a streamed "
        f"answer costs {live_w - plain_w:+.1f} writes (target: at most +1)"
    )
