"""No side effect twice: the :class:`ToolLedger` stores each tool call of an answer with
the message it answers, and replays the stored rounds when the answer is tried again.

Also what the user is told when an answer fails after a tool did something
(:func:`unfinished_answer`), and the text forms of calls and results that the loop, the
ledger and the confirmation step share.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from botkit.claims import Claims
from botkit.exceptions import ClaimLostError, StoreError
from botkit.llm import ChatMessage, Completion, ToolCall
from botkit.store import Fence, Store, ToolCallRecord
from botkit.turn import Turn

__all__ = [
    "CONFIRMED",
    "CUT_SHORT",
    "MAX_DONE_CHARS",
    "MAX_RESULT_CHARS",
    "ToolLedger",
    "named",
    "note_done",
    "quoted",
    "result_message",
    "result_text",
    "unfinished_answer",
]

log = logging.getLogger(__name__)

#: The longest tool result given back to the model, in characters.
MAX_RESULT_CHARS = 8000
#: The longest tool result quoted to the user when the answer fails after it ran.
MAX_DONE_CHARS = 200
#: The round number a call run on the user's "yes" is stored under.
CONFIRMED = -1
#: What the model is told of a call a stop or a crash cut short.
CUT_SHORT = {
    "error": "this call was cut short (the bot stopped while it ran): it may or may not "
    "have taken effect; do not call it again without asking the user"
}


class ToolLedger:
    """Where the tool loop stores each call of an answer, so no tool runs twice for one
    message.

    Each call is stored with the inbound message it answers and the model's id of the
    call, when it starts and again when it ends, before the model is asked again. The
    start is fenced: it is stored only while this process still holds the message, and a
    process that lost it (it stalled past its lease) runs no tool.

    An answer tried again (postponed by a model outage, or taken up after a stop or a
    crash) asks the model again, and the model would make new calls with new ids, so a
    stored result cannot be matched to a new call. Instead, the rounds the earlier try
    made (the assistant turn with its calls, then their results) are replayed into the
    request as they happened, and the model goes on from there; they count towards the
    bound on rounds. A call stored as still running was cut short: the model is told it
    may or may not have taken effect, and it is not run again.

    Args:
        store: the bot's store.
        turn: the answer in the making (its message's id, whether it was resumed).
        held: what the calls are stored under: (owner, fence) of the messages while this
            process holds them (``Outbox.held``); ``None`` unfenced.
        claims: this process's claims: no tool starts on one that may have lapsed.
    """

    def __init__(
        self,
        store: Store,
        turn: Turn,
        held: tuple[str, Fence] | None = None,
        claims: Claims | None = None,
    ) -> None:
        self._store = store
        self._turn = turn
        self._held = held
        self._claims = claims
        self._replayed: tuple[int, list[ChatMessage]] | None = None

    @property
    def held(self) -> tuple[str, Fence] | None:
        """What its writes are fenced on: (owner, the messages' tokens)."""
        return self._held

    async def replay(self) -> tuple[int, list[ChatMessage]]:
        """The rounds an earlier try of this answer made, and those rounds as messages
        to send after the prompt: nothing for a first try. Read once per answer; what
        they did is noted on the turn (``Turn.done``)."""
        if self._replayed is not None:
            return self._replayed
        turn = self._turn
        # a turn that made rounds already has replayed what there was
        records = [] if turn.tool_rounds else await self.earlier_calls()
        records = [r for r in records if r.round >= 0]
        ids = sorted({r.message_id for r in records})
        rounds: list[list[ToolCallRecord]] = []
        for record in records:
            same = rounds and (rounds[-1][0].message_id, rounds[-1][0].round) == (
                record.message_id,
                record.round,
            )
            if same:
                rounds[-1].append(record)
            else:
                rounds.append([record])
        messages: list[ChatMessage] = []
        for calls in rounds:
            asked = tuple(ToolCall(c.call_id, c.name, c.arguments) for c in calls)
            messages.append(Completion(calls[0].said, asked, "tool_calls", None, "").as_message())
            for c in calls:
                if c.status == "running":
                    messages.append(result_message(c, result_text(CUT_SHORT)))
                    note_done(turn, f"may have run {named(c)} (it was cut short)")
                else:
                    messages.append(result_message(c, c.result or ""))
                    if c.status == "done":
                        note_done(turn, f"ran {named(c)}: {quoted(c.result or '')}")
        if records:
            turn.tool_rounds = max(r.round for r in records) + 1
            log.info(
                "message %s: %d earlier round(s) of tool calls replayed, not run again",
                ids,
                len(rounds),
            )
        self._replayed = (len(rounds), messages)
        return self._replayed

    async def earlier_calls(self) -> list[ToolCallRecord]:
        """The calls an earlier try of this answer stored (none for a first try)."""
        turn = self._turn
        ids = turn.ids or ([turn.message.id] if turn.message.id is not None else [])
        return await self._store.tool_calls(ids) if turn.resumed and ids else []

    async def start(self, round_: int, call: ToolCall, said: str | None) -> int | None:
        """Store a call about to run; its row id (``None`` when there is no stored
        message to keep it with).

        Raises:
            ClaimLostError: another process holds the message now (or this process's
                claims may have lapsed): the tool must not run.
        """
        message_id = self._turn.message.id
        if message_id is None:
            return None
        taken_at = time.monotonic()
        row = await self._store.start_tool_call(
            ToolCallRecord(message_id, round_, call.id, call.name, call.arguments, said),
            held=self._held,
        )
        if self._held is not None and self._claims is not None and not self._claims.live(taken_at):
            # recorded as not run, so no later try reports it as "may have run"
            with contextlib.suppress(StoreError):
                await self._store.finish_tool_call(row, "rejected", "not run: claims lapsed")
            raise ClaimLostError("this process's claims may have lapsed; the tool was not run")
        return row

    async def finish(self, row: int, status: str, result: str) -> None:
        """Store how a started call ended and what the model is told."""
        await self._store.finish_tool_call(row, status, result)

    async def record(
        self, round_: int, call: ToolCall, said: str | None, status: str, result: str
    ) -> None:
        """Store a call answered without running a tool (``rejected``: no such tool, or
        arguments that do not fit), so a replayed round is whole."""
        message_id = self._turn.message.id
        if message_id is None:
            return
        await self._store.start_tool_call(
            ToolCallRecord(
                message_id, round_, call.id, call.name, call.arguments, said, status, result
            ),
            held=self._held,
        )


def unfinished_answer(done: Sequence[str], reason: str | None = None) -> str:
    """What the user is told when an answer fails after its tools did something: what
    was done, and no invitation to try again (which would do it twice).

    Args:
        done: what the tools did, one phrase each (``Turn.done``).
        reason: why no answer can be written (a budget), if the user may know it.
    """
    end = (
        f"But I can't write a full answer right now: {reason}"
        if reason
        else "But I couldn't write a full answer just now."
    )
    if len(done) == 1:
        return f"I {done[0]}. {end}"
    listed = "\n".join(f"- {phrase}" for phrase in done)
    return f"Here is what I did:\n{listed}\n{end}"


def result_text(value: Any) -> str:
    """A result as the text the model is given (and the ledger stores), cut to size."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + " […cut]"
    return text


def result_message(call: ToolCall | ToolCallRecord, text: str) -> ChatMessage:
    """The ``tool`` message that gives the model a call's result."""
    call_id = call.id if isinstance(call, ToolCall) else call.call_id
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def note_done(turn: Turn, phrase: str) -> None:
    """Note on the turn what a tool did, once (:func:`unfinished_answer` lists it)."""
    if phrase not in turn.done:
        turn.done.append(phrase)


def named(call: ToolCall | ToolCallRecord) -> str:
    """``/name(key='value', ...)``, as the user would read the call."""
    try:
        values = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        values = None
    if isinstance(values, dict):
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
    else:
        shown = call.arguments[:MAX_DONE_CHARS]
    return f"/{call.name}({shown})"


def quoted(text: str) -> str:
    """A result as the user is shown it: on one line, in quotes, cut to size."""
    text = " ".join(text.split())
    if len(text) > MAX_DONE_CHARS:
        text = text[: MAX_DONE_CHARS - 1] + "…"
    return f'"{text}"'
