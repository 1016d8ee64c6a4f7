"""What a running bot shares with its handlers: store, model, adapters, outbox, settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from botkit.adapter import Adapter
from botkit.claims import Claims
from botkit.clock import Clock, SystemClock
from botkit.history_cache import HistoryCache
from botkit.jobs import Jobs
from botkit.metrics import Metrics
from botkit.outbox import Outbox
from botkit.store import Claim, Store

if TYPE_CHECKING:
    from botkit.llm import ChatModel, TokenCounter
    from botkit.plugin import CommandHandler, ModelGuardEntry, PromptContextEntry

__all__ = ["ChatSettings", "Runtime"]


@dataclass(frozen=True, slots=True)
class ChatSettings:
    """How the bot talks to the model (the ``[bot]`` and ``[llm]`` tables, resolved)."""

    system_prompt: str = "You are a helpful assistant."
    reserve_output_tokens: int = 1024
    temperature: float | None = None
    history_limit: int = 200
    summarize: bool = True
    stream: bool = True
    burst: Literal["queue", "coalesce"] = "queue"


@dataclass(slots=True)
class Runtime:
    """Per-bot services; one per ``Bot``, never module-global."""

    store: Store
    model: ChatModel
    tokens: TokenCounter
    outbox: Outbox
    adapters: Mapping[str, Adapter]
    metrics: Metrics
    chat: ChatSettings
    plugin_settings: Mapping[str, Any] = field(default_factory=dict)
    commands: list[CommandHandler] = field(default_factory=list)
    model_guards: list[ModelGuardEntry] = field(default_factory=list)
    # plugins' contributions to the prompts respond() builds (``Plugin.prompt_context``)
    prompt_contexts: list[PromptContextEntry] = field(default_factory=list)
    # active conversations' settled turns, so an answer reads only what is new
    history: HistoryCache = field(default_factory=HistoryCache)
    # this process's claims on work (owner, lease, fencing; see botkit.claims)
    claims: Claims = field(default_factory=Claims)
    # queues a stored message for (re)processing; set by the Bot once the dispatcher exists
    submit: Callable[[int, int], None] | None = None
    # several processes may share the database (PostgreSQL), so another process may
    # hold older messages of a conversation
    shared: bool = False
    # the clock scheduled work is timed by (a test's moves on demand)
    clock: Clock = field(default_factory=SystemClock)
    # plugins' scheduled jobs (``ctx.schedule``); set by the Bot
    jobs: Jobs | None = None

    @property
    def owner(self) -> str:
        """This process's name on the work it claims."""
        return self.claims.owner

    @property
    def lease(self) -> float:
        """Seconds a claim lasts unrenewed."""
        return self.claims.lease

    def claim(self) -> Claim:
        """A claim by this process, lapsing with all its others (``Claims.claim``)."""
        return self.claims.claim()
