"""Fitting a conversation into the model's context window.

The system prompt always stays; the newest turns stay while they fit; the oldest go
first. A tool call and the results answering it stay or go together, because the API
rejects a tool result without its call and a call without its results. The newest
message (the user's new turn) always stays, cut from the front if it alone is too long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from botkit.exceptions import ContextLengthError
from botkit.llm.tokens import TokenCounter
from botkit.llm.types import ChatMessage, message_text

__all__ = ["TRUNCATION_MARKER", "FitResult", "fit_messages"]

TRUNCATION_MARKER = "[… the start of this message was cut to fit the context window …]\n"

# Shrinking an over-long message: each round aims this much below the exact need, so
# that a round or two normally suffices.
_SHRINK_MARGIN = 0.97
_MAX_SHRINK_ROUNDS = 12


@dataclass(frozen=True, slots=True)
class FitResult:
    """What :func:`fit_messages` kept and dropped.

    Attributes:
        messages: the prompt to send: the system messages, then the kept history in order.
        dropped: the history messages left out, oldest first (to summarize, say).
        tokens: the prompt's token count, reply priming included
            (``counter.count_messages(messages)``); when the whole prompt fitted by its
            byte bound (``TokenCounter.at_most``) without being counted, that bound.
        truncated: whether the newest message had to be cut.
    """

    messages: Sequence[ChatMessage]
    dropped: list[ChatMessage] = field(default_factory=list)
    tokens: int = 0
    truncated: bool = False


def fit_messages(
    system: Sequence[ChatMessage],
    history: Sequence[ChatMessage],
    *,
    budget: int,
    counter: TokenCounter,
    counts: Sequence[int] | None = None,
) -> FitResult:
    """Keep the system messages and as much recent history as ``budget`` allows.

    History is split into units: a single message, or an assistant message with
    ``tool_calls`` together with the ``tool`` messages that follow and answer it. Units
    are kept newest first until one does not fit; it and everything older are dropped
    (so the kept history has no gaps). A tool result whose call is not right before it,
    or a call missing some of its results, is always dropped: the API would refuse it.
    The unit holding the last message is always kept; if it does not fit, the last
    message's text is cut from the front, keeping its end, behind
    :data:`TRUNCATION_MARKER`.

    Each message is counted once (or not at all when ``counts`` is given), so fitting
    is linear in the number of messages.

    Args:
        system: system messages, always kept, in order.
        history: the conversation after them, oldest first; its last message is the
            new turn.
        budget: tokens the prompt may take: the model's window minus the tokens kept
            for the reply.
        counter: counts tokens for the model.
        counts: ``counter.count_message(m)`` for each history message, if the caller
            already has them (stored with the messages, say).

    Returns:
        The fitted prompt, what was dropped, and its token count.

    Raises:
        ContextLengthError: the system messages alone, with the new turn cut to its
            marker, do not fit ``budget``.
        ValueError: ``counts`` does not have one entry per history message.
    """
    if counts is None:
        if history and not _has_orphans(history):
            # the usual case, a prompt far inside the window: known to fit without the
            # tokenizer (which is then never loaded); ``tokens`` is the bound
            bound = counter.at_most([*system, *history])
            if bound <= budget:
                return FitResult([*system, *history], [], bound)
        counts = [counter.count_message(message) for message in history]
    elif len(counts) != len(history):
        raise ValueError(f"counts has {len(counts)} entries for {len(history)} messages")
    fixed = sum(counter.count_message(message) for message in system)
    fixed += counter.reply_priming()
    if not history:
        return FitResult(list(system), [], fixed)

    units, orphans = _units(history)
    last = units.pop()
    last_tokens = sum(counts[i] for i in last)
    room = budget - fixed
    truncated = False
    tail = [history[i] for i in last]
    if last_tokens > room:
        cut, cut_tokens = _truncate(
            history[last[-1]], counter, room - (last_tokens - counts[last[-1]])
        )
        tail[-1] = cut
        last_tokens += cut_tokens - counts[last[-1]]
        truncated = True
    # once the new turn had to be cut, older turns get none of the room it lost
    room = 0 if truncated else room - last_tokens

    kept: list[int] = []
    for unit in reversed(units):
        size = sum(counts[i] for i in unit)
        if size > room:
            break
        room -= size
        kept.extend(reversed(unit))
    kept.reverse()

    kept_set = set(kept)
    kept_set.update(last)
    dropped = [m for i, m in enumerate(history) if i not in kept_set or i in orphans]
    messages = [*system, *(history[i] for i in kept), *tail]
    tokens = fixed + last_tokens + sum(counts[i] for i in kept)
    return FitResult(messages, dropped, tokens, truncated)


def _units(history: Sequence[ChatMessage]) -> tuple[list[list[int]], set[int]]:
    """Group history indexes into units, and name the indexes that can never be sent.

    The last message always ends the last unit, even when it is an orphan, so the new
    turn is never lost.
    """
    units: list[list[int]] = []
    orphans: set[int] = set()
    i = 0
    n = len(history)
    while i < n:
        message = history[i]
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        if calls:
            wanted = {c.get("id") for c in calls if isinstance(c, dict)}
            unit = [i]
            i += 1
            while i < n and history[i].get("role") == "tool":
                unit.append(i)
                wanted.discard(history[i].get("tool_call_id"))
                i += 1
            if wanted and i < n:
                orphans.update(unit)  # a call missing results, not the newest turn
            else:
                units.append(unit)
        elif message.get("role") == "tool" and i < n - 1:
            orphans.add(i)
            i += 1
        else:
            units.append([i])
            i += 1
    return [u for u in units if not orphans.intersection(u)], orphans


def _truncate(message: ChatMessage, counter: TokenCounter, room: int) -> tuple[ChatMessage, int]:
    """Cut ``message``'s text from the front so the message takes at most ``room`` tokens.

    Returns:
        The cut copy and its token count.

    Raises:
        ContextLengthError: not even the marker alone fits.
    """
    text = message_text(message)
    empty = {**message, "content": TRUNCATION_MARKER}
    floor = counter.count_message(empty)
    if floor > room:
        raise ContextLengthError(
            "llm",
            f"the system prompt and the new message's framing need {floor - room} tokens "
            "more than the context window leaves for the prompt; shorten the system prompt",
        )
    keep = len(text)
    tokens = counter.count_message({**message, "content": TRUNCATION_MARKER + text})
    rounds = 0
    while tokens > room:
        rounds += 1
        if keep == 0 or rounds > _MAX_SHRINK_ROUNDS:
            return empty, floor
        # characters per token from the last try, aimed a little under the room
        text_tokens = max(1, tokens - floor)
        keep = int(keep * (room - floor) / text_tokens * _SHRINK_MARGIN)
        tail = text[-keep:] if keep else ""
        tokens = counter.count_message({**message, "content": TRUNCATION_MARKER + tail})
    return {**message, "content": TRUNCATION_MARKER + (text[-keep:] if keep else "")}, tokens


def _has_orphans(history: Sequence[ChatMessage]) -> bool:
    """Whether fitting would drop a tool result or call that has no partner."""
    if not any(m.get("role") == "tool" or m.get("tool_calls") for m in history):
        return False
    return bool(_units(history)[1])
