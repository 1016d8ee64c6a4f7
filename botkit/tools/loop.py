"""The tool loop: ask the model, run the tools it calls, give it the results, ask again.

The loop knows no :class:`botkit.Context`. It is given what it uses: the model
(:class:`ToolModel`: ``complete`` and ``stream``), the bot around it
(:class:`ToolHost`: show streamed text, run a tool, hold a side-effect call for the
user's "yes", drop a held one), the answer's :class:`botkit.turn.Turn` (its round count
and what its tools did), and optionally a :class:`ToolLedger`. ``ctx.llm.respond()``
binds these to the handler's context; a test can pass small fakes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Protocol, cast

from botkit.exceptions import (
    ClaimLostError,
    ConfigError,
    ContextLengthError,
    QuotaExceededError,
    RequestRejectedError,
    StoreUnavailableError,
)
from botkit.llm import ChatMessage, ChatRequest, Completion, TextDelta, ToolCall
from botkit.messages import Reply
from botkit.plugin import HandlerResult, Plugin, SkipHandler
from botkit.tools.arguments import ToolArgumentsError
from botkit.tools.declaration import Tool, ToolCommand
from botkit.tools.ledger import ToolLedger, named, note_done, quoted, result_message, result_text
from botkit.turn import Turn

__all__ = [
    "DEFAULT_TOOL_ROUNDS",
    "TOOL_CHOICE_MODES",
    "ToolHost",
    "ToolModel",
    "run_tool_loop",
    "tool_choice_of",
    "tool_choice_problems",
]

log = logging.getLogger(__name__)

#: Rounds of tool calls before the model is made to answer in words.
DEFAULT_TOOL_ROUNDS = 4
#: ``tool_choice`` values that name no tool.
TOOL_CHOICE_MODES = frozenset({"auto", "none", "required"})


class ToolModel(Protocol):
    """The model the loop asks (``ConversationLLM``: recorded, priced, guarded)."""

    async def complete(self, request: ChatRequest) -> Completion:
        """A whole reply."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | Completion]:
        """A streamed reply: fragments, then the whole ``Completion``."""
        ...


class ToolHost(Protocol):
    """What the loop needs from the bot around it."""

    async def show(self, texts: AsyncIterator[str]) -> None:
        """Show streamed text to the user as it comes."""
        ...

    async def run(self, tool: Tool, arguments: Any, call: ToolCall) -> HandlerResult:
        """Run a tool's handler with its parsed arguments."""
        ...

    async def hold(self, tool: Tool, arguments: Any) -> str:
        """Keep a side-effect call until the user says "yes"; the question to ask."""
        ...

    async def drop_held(self, tools: Sequence[Tool]) -> None:
        """Drop a call still waiting for this user's "yes": a new answer began."""
        ...


async def run_tool_loop(
    model: ToolModel,
    host: ToolHost,
    request: ChatRequest,
    tools: Sequence[Tool],
    *,
    turn: Turn,
    stream: bool,
    max_rounds: int,
    ledger: ToolLedger | None = None,
) -> Reply | None:
    """Ask, run the tools the model calls, give it the results, ask again.

    The first request carries ``request.tool_choice``; the later ones do not force a call
    again (``"required"`` or a named function becomes ``"auto"``), or the model would
    call tools until the bound. After ``max_rounds`` rounds of calls the model is asked
    once more with ``tool_choice="none"``, so it must answer in words. A call of a tool
    with side effects ends the turn with a question to the user (``host.hold``); their
    "yes" runs it.

    With a ``ledger``, every call is stored before the model is asked again, and the
    rounds an earlier try of this answer made are replayed first (they count towards
    ``max_rounds``): no tool runs twice for one message.

    Args:
        model: asked for each round.
        host: shows streamed text, runs tools, holds side-effect calls.
        request: the first request (prompt, tools offered, ``tool_choice``).
        tools: the tools offered, by which the model's calls are found.
        turn: the answer in the making: its round count and what its tools did.
        stream: stream the model's text to the user (``host.show``).
        max_rounds: rounds of calls before the model must answer in words.
        ledger: where calls are stored and found again; ``None`` stores nothing.

    Returns:
        The reply, or ``None`` when it was streamed.

    Raises:
        ContextLengthError: the first request does not fit (the caller re-fits).
        RequestRejectedError: a later request no longer fits with the tool results.
        ClaimLostError: another process holds the message now; no tool was run for it.
    """
    by_name = {t.name: t for t in tools}
    await host.drop_held(tools)  # a new turn drops an unconfirmed call
    messages: list[ChatMessage] = list(request.messages)
    round_ = 0
    if ledger is not None:
        round_, replayed = await ledger.replay()
        messages.extend(replayed)
    first = True
    while True:
        last = round_ >= max_rounds
        choice = request.tool_choice if round_ == 0 else _follow_up(request.tool_choice)
        ask = dataclasses.replace(
            request, messages=messages, tool_choice="none" if last else choice
        )
        try:
            completion, streamed = await _ask(model, host, ask, stream)
        except ContextLengthError as exc:
            if first:
                raise  # nothing has run yet: respond() fits the prompt again
            raise RequestRejectedError(
                "llm", f"the tool results no longer fit the context window: {exc.reason}"
            ) from exc
        first = False
        if not completion.tool_calls or last:
            if streamed:
                return None
            text = completion.content or ""
            if not text.strip() and completion.tool_calls:
                text = "Sorry, I could not finish that with the tools I have."
            return Reply(text)
        messages.append(completion.as_message())
        number = turn.tool_rounds
        turn.tool_rounds += 1
        round_ += 1
        for call in completion.tool_calls:
            spec = by_name.get(call.name)
            if spec is not None and spec.side_effects:
                try:
                    arguments = spec.parse(call.arguments)
                except ToolArgumentsError as exc:
                    text = result_text({"error": f"invalid arguments: {exc}"})
                    if ledger is not None:
                        await ledger.record(number, call, completion.content, "rejected", text)
                    messages.append(result_message(call, text))
                    continue
                question = await host.hold(spec, arguments)
                said = "" if streamed else (completion.content or "").strip()
                return Reply(f"{said}\n\n{question}" if said else question, markup="plain")
            text = await _call(host, turn, ledger, spec, call, number, completion.content)
            messages.append(result_message(call, text))


def tool_choice_of(
    choice: str | Mapping[str, Any] | None, tools: Sequence[Tool]
) -> str | Mapping[str, Any] | None:
    """A ``tool_choice`` as the wire wants it: ``"auto"``, ``"none"`` and ``"required"``
    as they are, a tool's name as the named-function mapping.

    Raises:
        ValueError: the name is not one of ``tools``.
    """
    if choice is None or not isinstance(choice, str) or choice in TOOL_CHOICE_MODES:
        return choice
    if choice not in {t.name for t in tools}:
        offered = ", ".join(sorted(t.name for t in tools)) or "none"
        raise ValueError(
            f"tool_choice {choice!r} is neither auto, none nor required, and names no "
            f"offered tool (offered: {offered})"
        )
    return {"type": "function", "function": {"name": choice}}


def tool_choice_problems(
    plugins: Sequence[Plugin], settings: Mapping[str, Any]
) -> Iterator[ConfigError]:
    """A ``ConfigError`` for each plugin setting ``tool_choice`` that names a tool no
    loaded plugin offers (it would fail every answer, not the start)."""
    offered = {
        command.name
        for plugin in plugins
        for command in plugin.commands
        if isinstance(command.func, ToolCommand)
    }
    for name, value in settings.items():
        choice = getattr(value, "tool_choice", None)
        if isinstance(choice, str) and choice not in TOOL_CHOICE_MODES and choice not in offered:
            known = ", ".join(sorted(offered)) or "none"
            yield ConfigError(
                f"plugins.{name}.tool_choice",
                f"no plugin offers a tool named {choice!r} (tools: {known})",
            )


def _follow_up(choice: str | Mapping[str, Any] | None) -> str | Mapping[str, Any] | None:
    """The ``tool_choice`` after the first round: a forced call is not forced again."""
    return choice if choice is None or choice in ("auto", "none") else "auto"


async def _ask(
    model: ToolModel, host: ToolHost, request: ChatRequest, stream: bool
) -> tuple[Completion, bool]:
    """One model call; streamed text is shown as it comes. Whether text was streamed."""
    if not stream:
        return await model.complete(request), False
    events = cast(AsyncGenerator[TextDelta | Completion, None], model.stream(request))
    try:
        first = await anext(events, None)
        if first is None:
            raise RequestRejectedError("llm", "the model's stream ended without a reply")
        if isinstance(first, Completion):
            return first, False  # only tool calls: nothing to show
        whole: list[Completion] = []

        async def texts() -> AsyncGenerator[str, None]:
            yield first.text
            async for event in events:
                if isinstance(event, TextDelta):
                    yield event.text
                else:
                    whole.append(event)

        await host.show(texts())
        return whole[-1], True
    finally:
        await events.aclose()


async def _call(
    host: ToolHost,
    turn: Turn,
    ledger: ToolLedger | None,
    spec: Tool | None,
    call: ToolCall,
    round_: int,
    said: str | None,
) -> str:
    """Run one call, stored before and after when there is a ledger; what the model is
    told (the result, or an error to correct)."""
    if spec is None:
        rejection: str | None = f"there is no tool named {call.name!r}"
    else:
        try:
            arguments = spec.parse(call.arguments)
            rejection = None
        except ToolArgumentsError as exc:
            rejection = f"invalid arguments: {exc}"
    if spec is None or rejection is not None:
        text = result_text({"error": rejection})
        if ledger is not None:
            await ledger.record(round_, call, said, "rejected", text)
        return text
    row = await ledger.start(round_, call, said) if ledger is not None else None
    status, value = await _run(host, spec, arguments, call)
    text = result_text(value)
    if ledger is not None and row is not None:
        await ledger.finish(row, status, text)
    if status == "done":
        note_done(turn, f"ran {named(call)}: {quoted(text)}")
    return text


async def _run(host: ToolHost, spec: Tool, arguments: Any, call: ToolCall) -> tuple[str, Any]:
    """Run a tool: how it went (``done``, ``skipped``, ``failed``) and its result."""
    try:
        result = await host.run(spec, arguments, call)
    except SkipHandler:
        return "skipped", "(no result)"
    except (ClaimLostError, StoreUnavailableError, QuotaExceededError):
        raise  # not the tool's failure: the message is left, postponed or refused as a whole
    except Exception as exc:  # a broken tool must not break the answer
        log.exception("tool %s failed", spec.name)
        return "failed", {"error": f"the tool failed ({type(exc).__name__})"}
    if result is None:
        return "done", "(done, nothing to show)"
    return "done", result.text if isinstance(result, Reply) else result
