"""Skills as tools: commands with typed arguments that the model may call.

A tool is a command whose arguments are declared, as a frozen dataclass or a JSON
schema. People call it as ``/forecast Paris days=3``; when the chat skill answers
(``ctx.llm.respond()``), the model is offered the same command as a function and may
call it. The tool loop runs the handler with the parsed arguments, gives the model the
result and asks again, for at most ``max_tool_rounds`` rounds. Invalid arguments are
not a crash: the error goes back to the model, which can correct itself. A tool with
side effects is not run on the model's word alone: the user is asked first, the call
waits in the plugin's state, and their "yes" runs it.

No tool runs twice for one message: each call is stored with the message it answers
before the model is asked again (a :class:`ToolLedger`), and an answer tried again (the
model was down, or the process stopped mid-answer) replays the stored rounds instead of
running them again. If the answer fails after a tool did something, the user is told
what was done (:func:`unfinished_answer`), not asked to try again::

    @dataclass(frozen=True)
    class ForecastArgs:
        \"\"\"Arguments of /forecast.

        Attributes:
            city: the city, e.g. "Paris".
            days: how many days ahead, 1 to 7.
        \"\"\"

        city: str
        days: int = 1

    @tool(plugin, "forecast", description="The weather forecast for a city")
    async def forecast(args: ForecastArgs, ctx: Context) -> str:
        return f"Sunny in {args.city} for {args.days} day(s)"
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import shlex
import time
import types
import typing
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Union, cast, get_args, get_origin

import jsonschema
import jsonschema.exceptions
import jsonschema.validators

from botkit.claims import Claims
from botkit.exceptions import (
    ClaimLostError,
    ConfigError,
    ContextLengthError,
    PluginError,
    QuotaExceededError,
    RequestRejectedError,
    StoreError,
    StoreUnavailableError,
)
from botkit.llm import ChatMessage, ChatRequest, Completion, TextDelta, ToolCall
from botkit.messages import Message, Reply
from botkit.plugin import HandlerResult, Plugin, SkipHandler
from botkit.store import Fence, Store, ToolCallRecord
from botkit.turn import Turn

if TYPE_CHECKING:
    from botkit.context import Context
    from botkit.conversation import ConversationLLM

__all__ = [
    "CONFIRMED",
    "CONFIRM_TIMEOUT",
    "DEFAULT_TOOL_ROUNDS",
    "Tool",
    "ToolArgumentsError",
    "ToolLedger",
    "offered_tools",
    "run_tool_loop",
    "schema_of",
    "tool",
    "tool_choice_of",
    "unfinished_answer",
]

log = logging.getLogger(__name__)

#: Rounds of tool calls before the model is made to answer in words.
DEFAULT_TOOL_ROUNDS = 4
#: How long a side-effect call waits for the user's "yes".
CONFIRM_TIMEOUT = timedelta(minutes=10)
#: The longest tool result given back to the model, in characters.
MAX_RESULT_CHARS = 8000
#: The longest tool result quoted to the user when the answer fails after it ran.
MAX_DONE_CHARS = 200
#: ``tool_choice`` values that name no tool.
TOOL_CHOICE_MODES = frozenset({"auto", "none", "required"})
#: The round number a call run on the user's "yes" is stored under.
CONFIRMED = -1
#: What the model is told of a call a stop or a crash cut short.
CUT_SHORT = {
    "error": "this call was cut short (the bot stopped while it ran): it may or may not "
    "have taken effect; do not call it again without asking the user"
}

ToolFunction = Callable[[Any, "Context"], Awaitable[HandlerResult]]

_YES = frozenset({"yes", "y", "yes please", "yep", "ok", "okay", "sure", "confirm", "go ahead"})
_NO = frozenset({"no", "n", "nope", "cancel", "stop", "don't", "do not"})
_ANSWER = re.compile(r"^\s*([a-z' ]{1,12}?)\s*[.!]*\s*$", re.IGNORECASE)
_PENDING = "pending_tool_call:{}"


class ToolArgumentsError(ValueError):
    """Arguments that do not fit a tool's declaration (from the model or a person)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Tool:
    """A command the model may call.

    Attributes:
        name: the command's name, also the function's name.
        plugin: the plugin that declared it.
        description: what it does, for ``/help`` and for the model.
        parameters: the JSON schema of its arguments (an object).
        side_effects: it changes something; the model's call waits for the user's "yes".
        arguments: the dataclass the arguments are built into, or ``None`` for a plain
            ``dict`` (a tool declared with a JSON schema).
        func: the handler, ``(arguments, ctx)``.
        confirm: the question asked before a side-effect call, formatted with the
            arguments (``"Delete note {id}?"``); a default names the command.
        command_parser: reads what a person typed after ``/name`` into the arguments'
            mapping, instead of the generic words-and-``key=value`` reading.
    """

    name: str
    plugin: str
    description: str
    parameters: Mapping[str, Any]
    side_effects: bool
    arguments: type[Any] | None
    func: ToolFunction
    confirm: str | None = None
    command_parser: Callable[[str], Mapping[str, Any]] | None = None

    def definition(self) -> dict[str, Any]:
        """The function tool in the chat-completions wire format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }

    def parse(self, value: str | Mapping[str, Any]) -> Any:
        """Arguments the model wrote (JSON text) or a mapping, checked and built.

        Raises:
            ToolArgumentsError: not JSON, not an object, or not what the schema says.
        """
        if isinstance(value, str):
            try:
                value = ToolCall("", self.name, value).parsed_arguments()
            except RequestRejectedError as exc:
                raise ToolArgumentsError(
                    f"the arguments are not a JSON object ({exc.reason})"
                ) from None
        schema = dict(self.parameters)
        validator = jsonschema.validators.validator_for(schema)(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(dict(value)))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            raise ToolArgumentsError(f"{where + ': ' if where else ''}{error.message}")
        if self.arguments is None:
            return dict(value)
        try:
            return _build(self.arguments, value)
        except (TypeError, ValueError) as exc:
            raise ToolArgumentsError(str(exc)) from None

    def parse_command(self, text: str) -> Any:
        """Arguments a person typed after ``/name``: a JSON object, or words and
        ``key=value`` pairs, positional words filling the fields in order (the last text
        field takes the rest of the line).

        Raises:
            ToolArgumentsError: as for :meth:`parse`, or what the tool's own
                ``command_parser`` raised.
        """
        text = text.strip()
        if self.command_parser is not None:
            return self.parse(self.command_parser(text))
        if text.startswith("{"):
            return self.parse(text)
        properties: Mapping[str, Any] = self.parameters.get("properties") or {}
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        named: dict[str, Any] = {}
        positional: list[str] = []
        for word in words:
            key, sep, raw = word.partition("=")
            if sep and key in properties:
                named[key] = _coerce(raw, properties[key])
            else:
                positional.append(word)
        required = set(self.parameters.get("required") or ())
        free = [name for name in properties if name not in named]
        for index, name in enumerate(free):
            if not positional:
                break
            schema = properties[name]
            later = free[index + 1 :]
            if _kind(schema) == "string" and not any(
                _kind(properties[f]) == "string" for f in later
            ):
                # the last text field takes every word the fields after it cannot
                keep = len(positional) - _tail_fits(positional[1:], [properties[f] for f in later])
                named[name] = " ".join(positional[:keep])
                positional = positional[keep:]
            elif _fits(positional[0], schema) or name in required:
                # a required field takes the word even when it is wrong: the check says so
                named[name] = _coerce(positional.pop(0), schema)
        unfilled = [name for name in free if name not in named]
        if positional and unfilled:
            named[unfilled[0]] = positional.pop(0)  # the schema check says what it wants
        if positional:
            raise ToolArgumentsError(f"unexpected {' '.join(positional)!r}")
        return self.parse(named)

    def usage(self) -> str:
        """``/name <city> [days=…]``: the fields, required ones in angle brackets."""
        required = set(self.parameters.get("required") or ())
        parts = [
            f"<{name}>" if name in required else f"[{name}=…]"
            for name in (self.parameters.get("properties") or {})
        ]
        return " ".join([f"/{self.name}", *parts])


class ToolCommand:
    """The command handler a tool registers: ``/name arguments`` typed by a person."""

    def __init__(self, tool: Tool) -> None:
        self.tool = tool
        self.__doc__ = tool.description
        self.__name__ = tool.name

    async def __call__(self, message: Message, ctx: Context) -> HandlerResult:
        """Parse the arguments and run the tool; a usage line when they do not fit."""
        try:
            arguments = self.tool.parse_command(ctx.args)
        except ToolArgumentsError as exc:
            return Reply(f"{exc}\nUsage: {self.tool.usage()}", markup="plain")
        return await self.tool.func(arguments, ctx)


def tool(
    plugin: Plugin,
    name: str,
    *,
    description: str = "",
    arguments: type[Any] | Mapping[str, Any] | None = None,
    side_effects: bool = False,
    confirm: str | None = None,
    aliases: tuple[str, ...] = (),
    command_parser: Callable[[str], Mapping[str, Any]] | None = None,
) -> Callable[[ToolFunction], ToolFunction]:
    """Declare a command with typed arguments that the model may call as a tool.

    The handler takes ``(arguments, ctx)``. Its arguments are declared by ``arguments``
    (a dataclass, or a JSON schema of an object: the handler then gets a ``dict``), or
    else by the annotation of its first parameter.

    Args:
        plugin: the plugin the command belongs to.
        name: the command's name (``/name``), also the function's name for the model.
        description: for ``/help`` and the model; by default the handler's first
            docstring line.
        arguments: a dataclass or a JSON schema (``{"type": "object", ...}``).
        side_effects: the command changes something: when the model calls it, the user
            is asked to confirm first.
        confirm: the question asked before a side-effect call, formatted with the
            arguments' fields (``"Delete note {id}?"``).
        aliases: other command names.
        command_parser: reads the text a person types after ``/name`` into the
            arguments (a mapping, then checked like the model's); it raises
            ``ToolArgumentsError`` with what is wrong. By default, words and
            ``key=value`` pairs fill the fields in order.

    Raises:
        PluginError: the arguments cannot be described as a JSON schema, or the name is
            not a valid command name.
    """

    def register(func: ToolFunction) -> ToolFunction:
        declared = arguments if arguments is not None else _annotated_arguments(func, name)
        if isinstance(declared, type):
            if not dataclasses.is_dataclass(declared):
                raise PluginError(f"tool {name!r}: {declared.__name__} is not a dataclass")
            try:
                schema = schema_of(declared)
            except TypeError as exc:
                raise PluginError(f"tool {name!r}: {exc}") from None
            target: type[Any] | None = declared
        else:
            schema = dict(declared)
            if schema.get("type") != "object":
                raise PluginError(f'tool {name!r}: its JSON schema must have "type": "object"')
            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.exceptions.SchemaError as exc:
                raise PluginError(f"tool {name!r}: invalid JSON schema: {exc.message}") from None
            target = None
        doc = (func.__doc__ or "").strip().splitlines()
        spec = Tool(
            name=name,
            plugin=plugin.name,
            description=description or (doc[0] if doc else name),
            parameters=schema,
            side_effects=side_effects,
            arguments=target,
            func=func,
            confirm=confirm,
            command_parser=command_parser,
        )
        plugin.on_command(name, description=spec.description, aliases=aliases)(ToolCommand(spec))
        if side_effects and not any(h.func is confirm_pending for h in plugin.message_handlers):
            plugin.on_message(_is_answer)(confirm_pending)
        return func

    return register


def offered_tools(ctx: Context) -> list[Tool]:
    """Every tool the loaded plugins declared, in command order."""
    return [c.func.tool for c in ctx.commands if isinstance(c.func, ToolCommand)]


# -- the tool loop -------------------------------------------------------------------------


async def run_tool_loop(
    llm: ConversationLLM,
    ctx: Context,
    request: ChatRequest,
    tools: Sequence[Tool],
    *,
    stream: bool,
    max_rounds: int,
    ledger: ToolLedger | None = None,
) -> Reply | None:
    """Ask, run the tools the model calls, give it the results, ask again.

    The first request carries ``request.tool_choice``; the later ones do not force a call
    again (``"required"`` or a named function becomes ``"auto"``), or the model would
    call tools until the bound. After ``max_rounds`` rounds of calls the model is asked
    once more with ``tool_choice="none"``, so it must answer in words. A call of a tool
    with side effects ends the turn with a question to the user; their "yes" runs it.

    With a ``ledger``, every call is stored before the model is asked again, and the
    rounds an earlier try of this answer made are replayed first (they count towards
    ``max_rounds``): no tool runs twice for one message.

    Returns:
        The reply, or ``None`` when it was streamed.

    Raises:
        ContextLengthError: the first request does not fit (the caller re-fits).
        RequestRejectedError: a later request no longer fits with the tool results.
        ClaimLostError: another process holds the message now; no tool was run for it.
    """
    by_name = {t.name: t for t in tools}
    await _forget_pending(ctx, tools)  # a new turn drops an unconfirmed call
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
            completion, streamed = await _ask(llm, ctx, ask, stream)
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
        number = ctx.turn.tool_rounds
        ctx.turn.tool_rounds += 1
        round_ += 1
        for call in completion.tool_calls:
            spec = by_name.get(call.name)
            if spec is not None and spec.side_effects:
                try:
                    arguments = spec.parse(call.arguments)
                except ToolArgumentsError as exc:
                    text = _text({"error": f"invalid arguments: {exc}"})
                    if ledger is not None:
                        await ledger.record(number, call, completion.content, "rejected", text)
                    messages.append(_result(call, text))
                    continue
                question = await _hold(ctx, spec, arguments, call)
                said = "" if streamed else (completion.content or "").strip()
                return Reply(f"{said}\n\n{question}" if said else question, markup="plain")
            text = await _call(ctx, ledger, spec, call, number, completion.content)
            messages.append(_result(call, text))


def _follow_up(choice: str | Mapping[str, Any] | None) -> str | Mapping[str, Any] | None:
    """The ``tool_choice`` after the first round: a forced call is not forced again."""
    return choice if choice is None or choice in ("auto", "none") else "auto"


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


async def _ask(
    llm: ConversationLLM, ctx: Context, request: ChatRequest, stream: bool
) -> tuple[Completion, bool]:
    """One model call; streamed text is shown as it comes. Whether text was streamed."""
    if not stream:
        return await llm.complete(request), False
    events = cast(AsyncGenerator[TextDelta | Completion, None], llm.stream(request))
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

        await ctx.stream(texts())
        return whole[-1], True
    finally:
        await events.aclose()


async def _call(
    ctx: Context,
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
        text = _text({"error": rejection})
        if ledger is not None:
            await ledger.record(round_, call, said, "rejected", text)
        return text
    row = await ledger.start(round_, call, said) if ledger is not None else None
    status, value = await _run(ctx, spec, arguments, call)
    text = _text(value)
    if ledger is not None and row is not None:
        await ledger.finish(row, status, text)
    if status == "done":
        _note_done(ctx.turn, f"ran {_named(call)}: {_quoted(text)}")
    return text


async def _run(ctx: Context, spec: Tool, arguments: Any, call: ToolCall) -> tuple[str, Any]:
    """Run a tool: how it went (``done``, ``skipped``, ``failed``) and its result."""
    try:
        result = await spec.func(arguments, ctx.for_handler(spec.plugin, args=call.arguments))
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


def _text(value: Any) -> str:
    """A result as the text the model is given (and the ledger stores), cut to size."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + " […cut]"
    return text


def _result(call: ToolCall | ToolCallRecord, text: str) -> ChatMessage:
    call_id = call.id if isinstance(call, ToolCall) else call.call_id
    return {"role": "tool", "tool_call_id": call_id, "content": text}


# -- no side effect twice ------------------------------------------------------------------


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
                    messages.append(_result(c, _text(CUT_SHORT)))
                    _note_done(turn, f"may have run {_named(c)} (it was cut short)")
                else:
                    messages.append(_result(c, c.result or ""))
                    if c.status == "done":
                        _note_done(turn, f"ran {_named(c)}: {_quoted(c.result or '')}")
        if records:
            turn.tool_rounds = max(r.round for r in records) + 1
            log.info(
                "message %s: %d earlier round(s) of tool calls replayed, not run again",
                ids,
                len(rounds),
            )
        self._replayed = (len(rounds), messages)
        return self._replayed

    async def hold_state(self, namespace: str, key: str, value: Any) -> None:
        """Store a value in a namespace's state only while this answer's messages are
        still held (else ``ClaimLostError``, and nothing stored)."""
        await self._store.state(namespace).set(key, value, held=self._held)

    async def earlier_calls(self) -> list[ToolCallRecord]:
        """The calls an earlier try of this answer stored (none for a first try)."""
        turn = self._turn
        ids = turn.ids or ([turn.message.id] if turn.message.id is not None else [])
        return await self._store.tool_calls.of(ids) if turn.resumed and ids else []

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
        row = await self._store.tool_calls.start(
            ToolCallRecord(message_id, round_, call.id, call.name, call.arguments, said),
            held=self._held,
        )
        if self._held is not None and self._claims is not None and not self._claims.live(taken_at):
            # recorded as not run, so no later try reports it as "may have run"
            with contextlib.suppress(StoreError):
                await self._store.tool_calls.finish(row, "rejected", "not run: claims lapsed")
            raise ClaimLostError("this process's claims may have lapsed; the tool was not run")
        return row

    async def finish(self, row: int, status: str, result: str) -> None:
        """Store how a started call ended and what the model is told."""
        await self._store.tool_calls.finish(row, status, result)

    async def record(
        self, round_: int, call: ToolCall, said: str | None, status: str, result: str
    ) -> None:
        """Store a call answered without running a tool (``rejected``: no such tool, or
        arguments that do not fit), so a replayed round is whole."""
        message_id = self._turn.message.id
        if message_id is None:
            return
        await self._store.tool_calls.start(
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


def _note_done(turn: Turn, phrase: str) -> None:
    if phrase not in turn.done:
        turn.done.append(phrase)


def _named(call: ToolCall | ToolCallRecord) -> str:
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


def _quoted(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_DONE_CHARS:
        text = text[: MAX_DONE_CHARS - 1] + "…"
    return f'"{text}"'


# -- confirmation of side effects ----------------------------------------------------------


async def _hold(ctx: Context, spec: Tool, arguments: Any, call: ToolCall) -> str:
    """Store a side-effect call in its plugin's state; the question to ask. Stored only
    while this process holds the message (a process that woke after losing it must not
    replace the question the user was really asked)."""
    values = _as_dict(arguments)
    await ctx.tool_ledger().hold_state(
        f"plugin:{spec.plugin}",
        _PENDING.format(ctx.conversation_id),
        {
            "tool": spec.name,
            "arguments": values,
            "user": ctx.message.sender.id,
            "at": datetime.now(UTC).isoformat(),
        },
    )
    if spec.confirm:
        with contextlib.suppress(KeyError, IndexError, ValueError):
            return f'{spec.confirm.format(**values)} Reply "yes" to go ahead or "no" to cancel.'
    shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
    return f'I would run /{spec.name}({shown}). Reply "yes" to go ahead or "no" to cancel.'


async def _forget_pending(ctx: Context, tools: Sequence[Tool]) -> None:
    """Drop the call waiting for this sender's "yes": they moved on (others may not have)."""
    key = _PENDING.format(ctx.conversation_id)
    for plugin in sorted({t.plugin for t in tools if t.side_effects}):
        state = ctx.for_handler(plugin, args="").state
        pending = await state.get(key)
        if isinstance(pending, dict) and pending.get("user") == ctx.message.sender.id:
            await state.delete(key)


def _is_answer(message: Message) -> bool:
    found = _ANSWER.match(message.text)
    return found is not None and found.group(1).lower().strip() in _YES | _NO


async def confirm_pending(message: Message, ctx: Context) -> HandlerResult:
    """Run (on "yes") or drop (on "no") the call the model asked for, if one is waiting.

    The call is stored with the "yes" like a call of the tool loop (round
    :data:`CONFIRMED`): an answer to that "yes" tried again (the process stopped) says
    what the earlier try did instead of running the tool again.
    """
    ledger = ctx.tool_ledger()
    earlier = [c for c in await ledger.earlier_calls() if c.round == CONFIRMED]
    if earlier:  # an earlier try ran it (the process stopped before answering)
        return _confirmed_earlier(earlier)
    key = _PENDING.format(ctx.conversation_id)
    pending = await ctx.state.get(key)
    if not isinstance(pending, dict) or pending.get("user") != message.sender.id:
        raise SkipHandler
    asked = datetime.fromisoformat(str(pending.get("at")))
    if datetime.now(UTC) - asked > CONFIRM_TIMEOUT:
        await ctx.state.delete(key)
        raise SkipHandler  # too old: an unrelated "yes"
    found = _ANSWER.match(message.text)
    name = str(pending.get("tool"))
    if found is None or found.group(1).lower().strip() in _NO:
        await ctx.state.delete(key)
        return Reply(f"Cancelled: /{name} was not run.", markup="plain")
    command = next((c for c in ctx.commands if c.name == name), None)
    if command is None or not isinstance(command.func, ToolCommand):
        await ctx.state.delete(key)
        return Reply(f"/{name} is no longer available.", markup="plain")
    spec = command.func.tool
    try:
        arguments = spec.parse(pending.get("arguments") or {})
    except ToolArgumentsError as exc:  # the declaration changed since
        await ctx.state.delete(key)
        return Reply(f"/{name} cannot run: {exc}", markup="plain")
    call = ToolCall("confirmed", name, json.dumps(pending.get("arguments") or {}))
    # stored (fenced) first, then the question dropped: a process that lost this "yes"
    # to another leaves it waiting for the one that holds it now
    row = await ledger.start(CONFIRMED, call, None)
    await ctx.state.delete(key)
    try:
        result = await spec.func(arguments, ctx)
    except Exception as exc:  # a stop (cancellation) leaves it running: it may have run
        if row is not None:
            await ledger.finish(row, "failed", _text({"error": type(exc).__name__}))
        raise
    if row is not None:
        text = result.text if isinstance(result, Reply) else str(result or "")
        await ledger.finish(row, "done", _text(text))
    return result


def _confirmed_earlier(calls: Sequence[ToolCallRecord]) -> Reply:
    """The answer to a "yes" an earlier try of this answer acted on: what that did."""
    call = calls[-1]
    if call.status == "running":
        return Reply(
            f"I may have run {_named(call)} already (it was cut short), so I did not run "
            "it again.",
            markup="plain",
        )
    if call.status == "failed":
        return Reply(f"{_named(call)} failed when it ran; I did not run it again.", "plain")
    return Reply(call.result or f"{_named(call)} ran.", markup="plain")


# -- JSON schemas from dataclasses -----------------------------------------------------------


def schema_of(cls: type[Any]) -> dict[str, Any]:
    """The JSON schema of a dataclass's fields, with descriptions from field metadata
    (``field(metadata={"description": ...})``) or the docstring's ``Attributes:``.

    Raises:
        TypeError: a field's type has no JSON equivalent.
    """
    hints = typing.get_type_hints(cls)
    docs = _attribute_docs(cls.__doc__ or "")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        prop = _type_schema(hints[f.name], f"{cls.__name__}.{f.name}")
        text = f.metadata.get("description") or docs.get(f.name)
        if text:
            prop["description"] = str(text)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
        elif f.default is not dataclasses.MISSING and _jsonable(f.default):
            prop["default"] = f.default
        properties[f.name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _type_schema(hint: Any, where: str) -> dict[str, Any]:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        inner = [_type_schema(a, where) for a in options]
        if len(options) < len(get_args(hint)):
            inner.append({"type": "null"})
        return inner[0] if len(inner) == 1 else {"anyOf": inner}
    if origin is Literal:
        values = list(get_args(hint))
        kinds = {_type_schema(type(v), where)["type"] for v in values}
        return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 else {"enum": values}
    if origin in (list, tuple, Sequence, frozenset, set):
        args = [a for a in get_args(hint) if a is not Ellipsis]
        if origin is tuple and len(args) > 1:
            raise TypeError(f"{where}: fixed-length tuples are not supported; use tuple[X, ...]")
        item = _type_schema(args[0], where) if args else {}
        return {"type": "array", "items": item}
    if origin in (dict, Mapping):
        pair = get_args(hint)
        value = _type_schema(pair[1], where) if len(pair) == 2 else {}
        return {"type": "object", "additionalProperties": value}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return schema_of(hint)
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if hint in simple:
        return {"type": simple[hint]}
    if hint is Any:
        return {}
    raise TypeError(f"{where}: {hint!r} cannot be a tool argument")


def _build(cls: type[Any], value: Mapping[str, Any]) -> Any:
    """A dataclass from validated JSON: nested dataclasses and tuples rebuilt."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.init and f.name in value:
            kwargs[f.name] = _convert(hints[f.name], value[f.name])
    return cls(**kwargs)


def _convert(hint: Any, value: Any) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in get_args(hint) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return _build(hint, value)
    if origin in (tuple, frozenset, set) and isinstance(value, list):
        args = [a for a in get_args(hint) if a is not Ellipsis]
        items = [_convert(args[0], v) for v in value] if args else value
        return origin(items)
    if origin is list and isinstance(value, list):
        item = get_args(hint)
        return [_convert(item[0], v) for v in value] if item else value
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _coerce(raw: str, schema: Mapping[str, Any]) -> Any:
    """A typed word as the JSON value the schema wants (left as is when it does not fit)."""
    kind = _kind(schema)
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw
    if kind == "boolean" and raw.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return raw.lower() in ("true", "yes", "on", "1")
    if kind == "array":
        return [_coerce(part.strip(), schema.get("items") or {}) for part in raw.split(",")]
    return raw


def _fits(word: str, schema: Mapping[str, Any]) -> bool:
    """Whether a typed word can be the value of a field of this schema."""
    if "enum" in schema:
        return word in [str(v) for v in schema["enum"]]
    kind = _kind(schema)
    if kind in ("integer", "number", "boolean"):
        return not isinstance(_coerce(word, schema), str)
    return True


def _tail_fits(words: Sequence[str], schemas: Sequence[Mapping[str, Any]]) -> int:
    """How many of the last ``words`` fill fields of ``schemas`` in order, from the end."""
    taken = 0
    for schema in reversed(schemas):
        if taken < len(words) and _fits(words[len(words) - 1 - taken], schema):
            taken += 1
    return taken


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    for option in schema.get("anyOf") or ():
        if isinstance(option, Mapping) and option.get("type") not in (None, "null"):
            return _kind(option)
    if "enum" in schema:
        return "string"
    return ""


def _attribute_docs(doc: str) -> dict[str, str]:
    """``name: text`` entries of a Google-style ``Attributes:`` section."""
    found: dict[str, str] = {}
    inside = False
    current = ""
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Attributes:", "Args:"):
            inside, current = True, ""
        elif inside and (not stripped or re.fullmatch(r"[A-Z]\w*:", stripped)):
            inside = False  # a blank line or the next section ends it
        elif inside:
            entry = re.match(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", stripped)
            if entry:
                current = entry.group(1)
                found[current] = entry.group(2)
            elif current:
                found[current] += " " + stripped
    return found


def _annotated_arguments(func: ToolFunction, name: str) -> type[Any]:
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:
        raise PluginError(f"tool {name!r}: cannot read the handler's annotations: {exc}") from None
    code = getattr(func, "__code__", None)
    first = code.co_varnames[0] if code is not None and code.co_argcount else None
    hint = hints.get(first) if first else None
    if not isinstance(hint, type):
        raise PluginError(
            f"tool {name!r}: annotate the handler's first parameter with a dataclass, "
            "or pass arguments=..."
        )
    return hint


def _as_dict(arguments: Any) -> dict[str, Any]:
    """Arguments as JSON-ready values, to store and to show."""
    if dataclasses.is_dataclass(arguments) and not isinstance(arguments, type):
        arguments = dataclasses.asdict(arguments)
    values: dict[str, Any] = json.loads(json.dumps(dict(arguments), default=list))
    return values


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


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
        if isinstance(choice, str) and choice not in _CHOICES and choice not in offered:
            known = ", ".join(sorted(offered)) or "none"
            yield ConfigError(
                f"plugins.{name}.tool_choice",
                f"no plugin offers a tool named {choice!r} (tools: {known})",
            )


_CHOICES = frozenset({"auto", "none", "required"})
