"""Map-reduce summaries of text longer than one context window."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from botkit import ChatRequest, Completion

__all__ = ["SummaryModel", "chunk_lines", "summarize"]

MAP_PROMPT = (
    "You summarise part {part} of {parts} of a longer {what}. Keep facts, names, "
    "numbers, decisions and open questions; leave out greetings and chatter. Answer with "
    "the summary only."
)
_REDUCE_TEMPLATE = (
    "You are given summaries of consecutive parts of one {what}, {order}. "
    "Merge them into one summary without repeating yourself. Answer with the summary only."
)
REDUCE_PROMPT = _REDUCE_TEMPLATE.format(what="conversation", order="oldest first")
_SEPARATOR = "\n"
_MAX_LEVELS = 8


class _Counter(Protocol):
    def count(self, text: str) -> int: ...


class _Info(Protocol):
    @property
    def context_window(self) -> int: ...

    @property
    def max_output_tokens(self) -> int: ...


class SummaryModel(Protocol):
    """What summarising needs of ``ctx.llm``: a recorded call, a counter, the window."""

    @property
    def tokens(self) -> _Counter:
        """Counts tokens like the model."""
        ...

    def model_info(self) -> _Info:
        """The model's window."""
        ...

    async def complete(self, request: ChatRequest) -> Completion:
        """A recorded model call."""
        ...


def chunk_lines(lines: Sequence[str], room: int, counter: _Counter) -> list[list[str]]:
    """Consecutive lines packed into chunks of at most ``room`` tokens each.

    A line longer than ``room`` on its own is cut into pieces that fit.
    """
    chunks: list[list[str]] = []
    current: list[str] = []
    used = 0
    for line in lines:
        for piece in _pieces(line, room, counter):
            size = counter.count(piece) + 1
            if current and used + size > room:
                chunks.append(current)
                current, used = [], 0
            current.append(piece)
            used += size
    if current:
        chunks.append(current)
    return chunks


def _pieces(line: str, room: int, counter: _Counter) -> list[str]:
    """``line`` cut into pieces of at most ``room`` tokens (at spaces where it can)."""
    if counter.count(line) + 1 <= room:
        return [line]
    pieces: list[str] = []
    rest = line
    while rest:
        keep = len(rest)
        while keep > 1 and counter.count(rest[:keep]) + 1 > room:
            keep = max(1, keep * 3 // 4)
        cut = rest.rfind(" ", keep // 2, keep) if keep < len(rest) else keep
        cut = cut if cut > 0 else keep
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].lstrip()
    return [p for p in pieces if p]


async def summarize(
    llm: SummaryModel,
    lines: Sequence[str],
    *,
    instruction: str,
    summary_tokens: int = 600,
    chunk_tokens: int | None = None,
    parallel: int = 4,
    what: str = "conversation",
) -> str:
    """One summary of ``lines`` (a transcript, oldest first), however long.

    Lines are packed into chunks that fit the model's window (less the reply and the
    prompt), or ``chunk_tokens`` if smaller. One chunk is summarised in one call with
    ``instruction``; several are summarised each (map), then the summaries are merged
    (reduce), in more levels when they do not fit one request together.

    Args:
        llm: ``ctx.llm`` (calls are recorded against the message, or the job).
        lines: the transcript.
        instruction: how the final summary should read.
        summary_tokens: the longest final summary.
        chunk_tokens: the most transcript tokens one request may carry.
        parallel: how many chunks are summarised at once.
        what: what the lines are, as the prompts name it (``"conversation"``,
            ``"document"``).

    Raises:
        ValueError: the window leaves no room for any text.
        ServiceError: a model call failed.
    """
    info = llm.model_info()
    counter = llm.tokens
    reply = min(summary_tokens, info.max_output_tokens)
    reduce_prompt = (
        REDUCE_PROMPT
        if what == "conversation"
        else _REDUCE_TEMPLATE.format(what=what, order="in order")
    )
    frame = max(
        counter.count(instruction), counter.count(MAP_PROMPT), counter.count(reduce_prompt)
    )
    room = info.context_window - reply - frame - 32  # message framing and reply priming
    if chunk_tokens is not None:
        room = min(room, chunk_tokens)
    if room < 64:
        raise ValueError(f"the model's window leaves {room} tokens for text; too few to summarise")
    chunks = chunk_lines(lines, room, counter)
    if len(chunks) <= 1:
        return await _ask(llm, instruction, chunks[0] if chunks else [], reply)
    # partial summaries of under a third of the room: any three fit one request, so
    # every reduce level cuts the number of texts to a third
    partial = max(32, min(reply, room // 3 - 2))
    gate = asyncio.Semaphore(max(1, parallel))

    async def summarise_part(index: int, chunk: list[str]) -> str:
        prompt = MAP_PROMPT.format(part=index + 1, parts=len(chunks), what=what)
        async with gate:
            return await _ask(llm, prompt, chunk, partial)

    level = list(await asyncio.gather(*(summarise_part(i, c) for i, c in enumerate(chunks))))
    for _ in range(_MAX_LEVELS):
        groups = chunk_lines(level, room, counter)
        if len(groups) == 1:
            break
        level = [await _ask(llm, reduce_prompt, group, partial) for group in groups]
    return await _ask(llm, f"{reduce_prompt}\n{instruction}", level, reply)


async def _ask(llm: SummaryModel, system: str, lines: Sequence[str], max_tokens: int) -> str:
    completion = await llm.complete(
        ChatRequest(
            [
                {"role": "system", "content": system},
                {"role": "user", "content": _SEPARATOR.join(lines)},
            ],
            max_tokens=max_tokens,
            temperature=0.2,
            purpose="summary",
        )
    )
    return (completion.content or "").strip()
