"""The ``Plugin`` object and its decorators.

A plugin module exposes one ``Plugin``; decorating functions only records them on that
object. Nothing is registered anywhere until a ``Bot`` loads the plugin::

    plugin = Plugin("echo", description="Repeats what you say")

    @plugin.on_command("echo", description="Repeat the text after the command")
    async def echo(message: Message, ctx: Context) -> str:
        return ctx.args or "Nothing to repeat."
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botkit.exceptions import ConfigError, PluginError
from botkit.llm.audio import SpeechRequest, TranscriptionRequest
from botkit.llm.types import ChatRequest
from botkit.messages import Message, Reply
from botkit.schedule import CronSchedule, IntervalSchedule, Schedule

if TYPE_CHECKING:
    from botkit.context import Context, JobContext, PluginRuntime
    from botkit.job_runner import JobRun
    from botkit.llm.models import ModelInfo

__all__ = [
    "CommandHandler",
    "Handler",
    "HandlerResult",
    "JobHandler",
    "LifecycleHook",
    "MessageHandler",
    "Middleware",
    "ModelCall",
    "ModelGuard",
    "ModelGuardEntry",
    "Next",
    "Plugin",
    "PromptContext",
    "PromptContextEntry",
    "ScheduledJob",
    "SkipHandler",
]

HandlerResult = Reply | str | None
Handler = Callable[[Message, "Context"], Awaitable[HandlerResult]]
Next = Callable[[], Awaitable[HandlerResult]]
Middleware = Callable[[Message, "Context", Next], Awaitable[HandlerResult]]
JobFunction = Callable[["JobContext"], Awaitable[None]]
JobRunFunction = Callable[["JobRun"], Awaitable[None]]
LifecycleHook = Callable[["PluginRuntime"], Awaitable[None]]
ModelGuard = Callable[["ModelCall", "PluginRuntime"], Awaitable[None]]
# (message being answered, the contributing plugin's context, token room) -> system text
PromptContext = Callable[[Message, "Context", int], Awaitable[str | None]]
MessagePredicate = Callable[[Message], bool]

_COMMAND_NAME = re.compile(r"^[a-z0-9_][a-z0-9_-]{0,31}$")
_JOB_NAME = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,63}$")


class SkipHandler(Exception):
    """Raised by a handler to pass the message on to the next matching handler."""


@dataclass(frozen=True, slots=True)
class CommandHandler:
    """A ``/name`` command a plugin answers."""

    plugin: str
    name: str
    description: str
    func: Handler
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageHandler:
    """A handler for messages matching a regex or predicate; ``None`` matches everything."""

    plugin: str
    func: Handler
    pattern: re.Pattern[str] | None = None
    predicate: MessagePredicate | None = None
    channels: frozenset[str] | None = None

    @property
    def catch_all(self) -> bool:
        """True when it matches every message (the default chat skill)."""
        return self.pattern is None and self.predicate is None

    def match(self, message: Message) -> re.Match[str] | bool:
        """A regex match, ``True`` for a predicate or catch-all hit, else ``False``."""
        if self.channels is not None and message.channel not in self.channels:
            return False
        if self.pattern is not None:
            return self.pattern.search(message.text) or False
        if self.predicate is not None:
            return bool(self.predicate(message))
        return True


@dataclass(frozen=True, slots=True)
class ModelCall:
    """A model call about to be made, as guards (budgets) see it.

    Attributes:
        request: what will be sent: a chat request, or text to speak or audio to write
            down (priced per character or minute; ``prompt_tokens`` is then 0).
        model: the model that will answer.
        prompt_tokens: our count of the prompt.
        message: the message it answers, when there is one.
        conversation_id: its conversation, when there is one.
        reservation_id: its spend reservation (its worst-case cost, held while guards
            run and the call is made); a budget counts the reservations made before it
            (``store.usage.spend(before_reservation=...)``).
    """

    request: ChatRequest | SpeechRequest | TranscriptionRequest
    model: str
    prompt_tokens: int
    message: Message | None
    conversation_id: int | None
    reservation_id: int | None = None


@dataclass(frozen=True, slots=True)
class ModelGuardEntry:
    """A plugin's ``before_model_call`` function, with the view of the bot it is given."""

    plugin: str
    func: ModelGuard
    view: PluginRuntime


@dataclass(frozen=True, slots=True)
class PromptContextEntry:
    """A plugin's ``prompt_context`` function, by the plugin that registered it."""

    plugin: str
    func: PromptContext


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """A function run on an interval or a cron schedule."""

    plugin: str
    name: str
    schedule: Schedule
    func: JobFunction


@dataclass(frozen=True, slots=True)
class JobHandler:
    """What runs a job a plugin schedules by name (``ctx.schedule(job=name, ...)``).

    Attributes:
        plugin: the plugin that registered it.
        name: the name jobs are scheduled by.
        func: the handler, given the run (:class:`botkit.JobRun`).
        attempts: how often one due time is tried (a raise, or its process dying)
            before it is given up.
    """

    plugin: str
    name: str
    func: JobRunFunction
    attempts: int = 3


# checks a plugin's parsed settings (and their config key) against the model's info
ModelCheck = Callable[[Any, str, "ModelInfo"], Iterable[ConfigError]]


class Plugin:
    """A skill: commands, message handlers, scheduled jobs, middlewares and hooks.

    Args:
        name: the plugin's name; its persisted state and settings live under it.
        description: one line for ``/help`` and ``botkit check-config``.
        settings_class: a frozen dataclass its ``[plugins.NAME]`` table is parsed into;
            handlers read it as ``ctx.settings``.
    """

    def __init__(
        self, name: str, *, description: str = "", settings_class: type[Any] | None = None
    ) -> None:
        self.name = name
        self.description = description
        self.settings_class = settings_class
        self.commands: list[CommandHandler] = []
        self.message_handlers: list[MessageHandler] = []
        self.jobs: list[ScheduledJob] = []
        self.job_handlers: list[JobHandler] = []
        self.middlewares: list[Middleware] = []
        self.startup_hooks: list[LifecycleHook] = []
        self.shutdown_hooks: list[LifecycleHook] = []
        self.model_guards: list[ModelGuard] = []
        self.prompt_contexts: list[PromptContext] = []
        self.model_checks: list[ModelCheck] = []

    def __repr__(self) -> str:
        return f"Plugin({self.name!r})"

    def on_command(
        self, name: str, *, description: str = "", aliases: tuple[str, ...] = ()
    ) -> Callable[[Handler], Handler]:
        """Answer ``/name`` (the text after it is ``ctx.args``).

        Raises:
            PluginError: the name is not a valid command name.
        """
        for command in (name, *aliases):
            if not _COMMAND_NAME.match(command):
                raise PluginError(
                    f"plugin {self.name!r}: {command!r} is not a valid command name "
                    "(lowercase letters, digits, '_' and '-', at most 32)"
                )

        def register(func: Handler) -> Handler:
            self.commands.append(
                CommandHandler(self.name, name, description or _first_line(func), func, aliases)
            )
            return func

        return register

    def on_message(
        self,
        match: str | re.Pattern[str] | MessagePredicate | None = None,
        *,
        channels: tuple[str, ...] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Answer messages matching a regex (searched in the text) or a predicate.

        With no ``match`` the handler takes every message not answered by a command or a
        more specific handler: that is how the default chat skill is written.
        """

        def register(func: Handler) -> Handler:
            pattern: re.Pattern[str] | None = None
            predicate: MessagePredicate | None = None
            if isinstance(match, str):
                pattern = re.compile(match)
            elif isinstance(match, re.Pattern):
                pattern = match
            elif match is not None:
                predicate = match
            self.message_handlers.append(
                MessageHandler(
                    self.name,
                    func,
                    pattern,
                    predicate,
                    frozenset(channels) if channels is not None else None,
                )
            )
            return func

        return register

    def on_schedule(
        self,
        *,
        every: float | timedelta | None = None,
        cron: str | None = None,
        timezone: str | None = None,
    ) -> Callable[[JobFunction], JobFunction]:
        """Run a job every ``every`` seconds, or on a ``cron`` expression (five fields or
        an alias such as ``@daily``; see :class:`CronSchedule`) read in ``timezone`` (an
        IANA name, ``"Europe/Berlin"``; UTC when not given).

        Raises:
            PluginError: neither or both of every/cron given, a malformed cron
                expression, an unknown time zone, or a time zone without cron.
        """
        if (every is None) == (cron is None):
            raise PluginError(f"plugin {self.name!r}: on_schedule needs exactly one of every/cron")
        schedule: Schedule
        if every is not None:
            if timezone is not None:
                raise PluginError(
                    f"plugin {self.name!r}: on_schedule(timezone=) applies to cron only"
                )
            seconds = every.total_seconds() if isinstance(every, timedelta) else float(every)
            if seconds <= 0:
                raise PluginError(f"plugin {self.name!r}: on_schedule(every=) must be positive")
            schedule = IntervalSchedule(seconds)
        else:
            try:
                zone = ZoneInfo(timezone) if timezone is not None else None
            except (ZoneInfoNotFoundError, ValueError):
                raise PluginError(
                    f"plugin {self.name!r}: {timezone!r} is not a known time zone"
                ) from None
            try:
                schedule = CronSchedule.parse(cron or "", zone)
            except ValueError as exc:
                raise PluginError(f"plugin {self.name!r}: {exc}") from exc

        def register(func: JobFunction) -> JobFunction:
            self.jobs.append(ScheduledJob(self.name, func.__name__, schedule, func))
            return func

        return register

    def job(self, name: str, *, attempts: int = 3) -> Callable[[JobRunFunction], JobRunFunction]:
        """Run ``func(run)`` for each job this plugin schedules under ``name``
        (``ctx.schedule(job=name, at=...)``), once cluster-wide at its due time.

        Raises:
            PluginError: the name is malformed or registered twice, or ``attempts`` < 1.
        """
        if not _JOB_NAME.match(name):
            raise PluginError(
                f"plugin {self.name!r}: {name!r} is not a valid job name "
                "(lowercase letters, digits, '_', '-' and '.', at most 64)"
            )
        if any(h.name == name for h in self.job_handlers):
            raise PluginError(f"plugin {self.name!r}: job {name!r} is registered twice")
        if attempts < 1:
            raise PluginError(f"plugin {self.name!r}: job {name!r} needs attempts >= 1")

        def register(func: JobRunFunction) -> JobRunFunction:
            self.job_handlers.append(JobHandler(self.name, name, func, attempts))
            return func

        return register

    def middleware(self, func: Middleware) -> Middleware:
        """Run ``func(message, ctx, call_next)`` before handler matching, for every message.

        A middleware may answer itself (return a reply) or drop the message (return
        ``None`` without calling ``call_next``).
        """
        self.middlewares.append(func)
        return func

    def before_model_call(self, func: ModelGuard) -> ModelGuard:
        """Run ``func(call, runtime)`` before every model call the bot makes.

        Raise ``QuotaExceededError`` to refuse the call before anything is spent (a
        budget); its message is what the user is told.
        """
        self.model_guards.append(func)
        return func

    def prompt_context(self, func: PromptContext) -> PromptContext:
        """Run ``func(message, ctx, room)`` each time ``ctx.llm.respond()`` writes an
        answer (the chat skill does): the text it returns is added to the prompt as a
        system message after the system prompt and the running summary, so the answer
        can draw on what the plugin knows about the conversation (documents people
        sent, say). ``ctx`` is the plugin's own context for the message; ``room`` is
        the most tokens the text may take (a longer one is left out, with a warning),
        and ``None`` or ``""`` adds nothing. An exception is logged and the answer is
        written without that text.
        """
        self.prompt_contexts.append(func)
        return func

    def check_model(self, func: ModelCheck) -> ModelCheck:
        """Check the plugin's settings against the model the bot talks to, when the
        config is read (with every other fault of the file, before anything starts):
        ``func(settings, key, model_info)`` yields a ``ConfigError`` per fault (a dollar
        limit on a model without prices, say). Not run with the offline stand-in."""
        self.model_checks.append(func)
        return func

    def on_startup(self, func: LifecycleHook) -> LifecycleHook:
        """Run ``func`` once when the bot starts, before any message is handled."""
        self.startup_hooks.append(func)
        return func

    def on_shutdown(self, func: LifecycleHook) -> LifecycleHook:
        """Run ``func`` once when the bot stops."""
        self.shutdown_hooks.append(func)
        return func


def _first_line(func: Callable[..., Any]) -> str:
    doc = (func.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""
