"""The confirmation step: a side-effect call the model asked for waits for its user's
"yes".

When the model calls a tool declared with ``side_effects=True``, the tool loop does not
run it: the call is stored as a :class:`PendingCall` in the tool's plugin's state (under
``pending_tool_call:<conversation id>``, fenced like the answer's other writes) and the
user is asked. Their next message is judged by :func:`decide`, a pure function, into
one :class:`Step`; the handler only acts on it:

========================  ===================================================
``Step.PASS``             nothing waits for this sender: the message goes on
``Step.EXPIRED``          it waited longer than :data:`CONFIRM_TIMEOUT`: dropped,
                          and the "yes" goes on as ordinary chat
``Step.CANCELLED``        "no": dropped, the user told so
``Step.UNAVAILABLE``      the plugin no longer declares the tool: dropped
``Step.INVALID``          its arguments no longer fit the declaration: dropped
``Step.RUN``              "yes": stored with the "yes" (round :data:`CONFIRMED`),
                          dropped, then run
========================  ===================================================

The call is kept, and a new answer written with tools drops the sender's waiting call
(they moved on), by the loop's host (``botkit.tools._host``).

**The handler is registered visibly.** Declaring the first side-effect tool of a plugin
adds one message handler to that plugin: a :class:`ToolConfirmation`, named
``confirm_tool_call``, matching only a short yes/no answer (:func:`is_answer`). It is an
ordinary entry of ``plugin.message_handlers`` (a predicate handler: it runs before the
catch-all chat skill), and ``botkit check-config`` lists it under its plugin next to
the tools that ask first. It is added rather than asked for: a plugin that forgot to
register it would ask a question nothing answers, and existing plugins keep working.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botkit.llm import ToolCall
from botkit.messages import Message, Reply
from botkit.plugin import HandlerResult, Plugin, SkipHandler
from botkit.store import ToolCallRecord
from botkit.tools.arguments import ToolArgumentsError
from botkit.tools.ledger import CONFIRMED, named, result_text

if TYPE_CHECKING:
    from botkit.context import Context
    from botkit.tools.declaration import Tool

__all__ = [
    "CONFIRMATION_HANDLER",
    "CONFIRM_TIMEOUT",
    "Decision",
    "PendingCall",
    "Step",
    "ToolConfirmation",
    "confirmation_of",
    "decide",
    "is_answer",
    "pending_key",
    "question",
]

#: How long a side-effect call waits for the user's "yes".
CONFIRM_TIMEOUT = timedelta(minutes=10)
#: The name the confirmation handler is listed by.
CONFIRMATION_HANDLER = "confirm_tool_call"

_YES = frozenset({"yes", "y", "yes please", "yep", "ok", "okay", "sure", "confirm", "go ahead"})
_NO = frozenset({"no", "n", "nope", "cancel", "stop", "don't", "do not"})
_ANSWER = re.compile(r"^\s*([a-z' ]{1,12}?)\s*[.!]*\s*$", re.IGNORECASE)


def pending_key(conversation_id: int) -> str:
    """The state key a conversation's waiting call is kept under."""
    return f"pending_tool_call:{conversation_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class PendingCall:
    """A side-effect call waiting for its user's "yes".

    Attributes:
        tool: the tool's name.
        arguments: its arguments, as JSON values.
        user: the sender whose "yes" runs it (nobody else's does).
        at: when the user was asked (aware).
    """

    tool: str
    arguments: dict[str, Any]
    user: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        """As stored in the plugin's state."""
        return {
            "tool": self.tool,
            "arguments": self.arguments,
            "user": self.user,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_json(cls, value: Any) -> PendingCall | None:
        """A stored call, or ``None`` for anything that is not one."""
        if not isinstance(value, Mapping):
            return None
        arguments = value.get("arguments") or {}
        try:
            at = datetime.fromisoformat(str(value.get("at")))
        except ValueError:
            return None
        if not isinstance(arguments, dict) or at.tzinfo is None:
            return None
        return cls(str(value.get("tool")), arguments, str(value.get("user")), at)

    def as_call(self) -> ToolCall:
        """The call as the ledger stores it."""
        return ToolCall("confirmed", self.tool, json.dumps(self.arguments))


class Step(enum.Enum):
    """What an answer to the question does with the waiting call (see the module)."""

    PASS = "pass"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    UNAVAILABLE = "unavailable"
    INVALID = "invalid"
    RUN = "run"


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """The step an answer takes, with what it needs to act.

    Attributes:
        step: the step.
        pending: the waiting call (``None`` for ``PASS`` with nothing waiting).
        tool: the tool to run (``RUN`` only).
        arguments: its parsed arguments (``RUN`` only).
        problem: why its arguments no longer fit (``INVALID`` only).
    """

    step: Step
    pending: PendingCall | None = None
    tool: Tool | None = None
    arguments: Any = None
    problem: str = ""

    @property
    def drops(self) -> bool:
        """Whether the waiting call is dropped (every step but ``PASS``)."""
        return self.step is not Step.PASS

    def reply(self) -> Reply | None:
        """What the user is told without running anything (``None``: the message goes on,
        or the tool runs)."""
        name = self.pending.tool if self.pending is not None else ""
        texts = {
            Step.CANCELLED: f"Cancelled: /{name} was not run.",
            Step.UNAVAILABLE: f"/{name} is no longer available.",
            Step.INVALID: f"/{name} cannot run: {self.problem}",
        }
        text = texts.get(self.step)
        return Reply(text, markup="plain") if text is not None else None


def is_answer(message: Message) -> bool:
    """Whether a message is a short yes or no (what the confirmation handler takes)."""
    return _word(message.text) in _YES | _NO


def decide(
    pending: PendingCall | None,
    sender: str,
    text: str,
    now: datetime,
    tools: Mapping[str, Tool],
) -> Decision:
    """Judge an answer to the question (see the table in the module's docstring).

    Args:
        pending: the call waiting in the conversation, if any.
        sender: who answered.
        text: what they wrote.
        now: the time now (aware).
        tools: the side-effect tools the plugin declares, by name.
    """
    if pending is None or pending.user != sender:
        return Decision(Step.PASS, pending)
    if now - pending.at > CONFIRM_TIMEOUT:
        return Decision(Step.EXPIRED, pending)
    if _word(text) not in _YES:
        return Decision(Step.CANCELLED, pending)
    spec = tools.get(pending.tool)
    if spec is None:
        return Decision(Step.UNAVAILABLE, pending)
    try:
        arguments = spec.parse(pending.arguments)
    except ToolArgumentsError as exc:  # the declaration changed since
        return Decision(Step.INVALID, pending, problem=str(exc))
    return Decision(Step.RUN, pending, spec, arguments)


def question(spec: Tool, values: Mapping[str, Any]) -> str:
    """What the user is asked before a side-effect call runs."""
    if spec.confirm:
        try:
            return f'{spec.confirm.format(**values)} Reply "yes" to go ahead or "no" to cancel.'
        except (KeyError, IndexError, ValueError):
            pass
    shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
    return f'I would run /{spec.name}({shown}). Reply "yes" to go ahead or "no" to cancel.'


class ToolConfirmation:
    """The message handler ``confirm_tool_call``: runs (on "yes") or drops (on "no")
    the call the model asked for, if one is waiting for this sender.

    The call is stored with the "yes" like a call of the tool loop (round
    :data:`CONFIRMED`): an answer to that "yes" tried again (the process stopped) says
    what the earlier try did instead of running the tool again.

    Attributes:
        tools: the side-effect tools of its plugin, by name.
    """

    def __init__(self) -> None:
        self.__name__ = CONFIRMATION_HANDLER
        self.tools: dict[str, Tool] = {}

    def add(self, spec: Tool) -> None:
        """Confirm calls of ``spec`` too."""
        self.tools[spec.name] = spec

    async def __call__(self, message: Message, ctx: Context) -> HandlerResult:
        """Act on the user's answer, or pass the message on (``SkipHandler``)."""
        ledger = ctx.tool_ledger()
        earlier = [c for c in await ledger.earlier_calls() if c.round == CONFIRMED]
        if earlier:  # an earlier try ran it (the process stopped before answering)
            return _confirmed_earlier(earlier)
        key = pending_key(ctx.conversation_id)
        pending = PendingCall.from_json(await ctx.state.get(key))
        now = datetime.now(UTC)
        decision = decide(pending, message.sender.id, message.text, now, self.tools)
        if decision.step is Step.PASS:
            raise SkipHandler
        if decision.step is not Step.RUN or decision.tool is None or decision.pending is None:
            await ctx.state.delete(key)
            if decision.step is Step.EXPIRED:
                raise SkipHandler  # too old: an unrelated "yes"
            return decision.reply()
        # stored (fenced) first, then the question dropped: a process that lost this "yes"
        # to another leaves it waiting for the one that holds it now
        row = await ledger.start(CONFIRMED, decision.pending.as_call(), None)
        await ctx.state.delete(key)
        try:
            result = await decision.tool.func(decision.arguments, ctx)
        except Exception as exc:  # a stop (cancellation) leaves it running: it may have run
            if row is not None:
                await ledger.finish(row, "failed", result_text({"error": type(exc).__name__}))
            raise
        if row is not None:
            text = result.text if isinstance(result, Reply) else str(result or "")
            await ledger.finish(row, "done", result_text(text))
        return result


def confirmation_of(plugin: Plugin) -> ToolConfirmation:
    """The plugin's confirmation handler, added to its message handlers on first use."""
    for handler in plugin.message_handlers:
        if isinstance(handler.func, ToolConfirmation):
            return handler.func
    confirmation = ToolConfirmation()
    plugin.on_message(is_answer)(confirmation)
    return confirmation


def _word(text: str) -> str | None:
    """The answer's word(s), lowercased (``"Yes!"`` → ``"yes"``), or ``None``."""
    found = _ANSWER.match(text)
    return found.group(1).lower().strip() if found is not None else None


def _confirmed_earlier(calls: Sequence[ToolCallRecord]) -> Reply:
    """The answer to a "yes" an earlier try of this answer acted on: what that did."""
    call = calls[-1]
    if call.status == "running":
        return Reply(
            f"I may have run {named(call)} already (it was cut short), so I did not run it again.",
            markup="plain",
        )
    if call.status == "failed":
        return Reply(f"{named(call)} failed when it ran; I did not run it again.", "plain")
    return Reply(call.result or f"{named(call)} ran.", markup="plain")
