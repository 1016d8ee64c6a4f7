"""Prometheus metrics of one bot (its own registry: no module-global state).

Every metric ``/metrics`` serves is made here, and the README lists them all (a test
compares the two). The core counts what passes through it (the inbox, the dispatcher,
the outbox, model calls); an adapter reports what only it sees (events it ignored,
waits for its channel's rate limits) through the :class:`ChannelReport` its inbox gives
it (``inbox.report(self.name)``).
"""

from __future__ import annotations

from typing import Any, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from botkit.exceptions import error_kind

__all__ = ["ChannelReport", "Metrics", "error_kind", "label"]

_LABEL_MAX = 40  # a label value longer than this is cut: a label is a category
_M = TypeVar("_M")


class _KeptChildren:
    """``labels()`` with each label set's child kept: prometheus_client checks the values
    and takes a lock at every call, and every message passes several of them."""

    def labels(self: _M, *labelvalues: Any, **labelkwargs: Any) -> _M:
        kept: dict[tuple[Any, ...], _M] | None = getattr(self, "_kept", None)
        if kept is None:
            kept = {}
            self._kept = kept
        if labelkwargs:
            return super().labels(*labelvalues, **labelkwargs)  # type: ignore[misc,no-any-return]
        child = kept.get(labelvalues)
        if child is None:
            child = kept[labelvalues] = super().labels(*labelvalues)  # type: ignore[misc]
        return child


class Counter(_KeptChildren, prometheus_client.Counter):
    """A counter whose labelled children are kept (see ``_KeptChildren``)."""


class Histogram(_KeptChildren, prometheus_client.Histogram):
    """A histogram whose labelled children are kept (see ``_KeptChildren``)."""


class Metrics:
    """The counters, gauges and histograms ``/metrics`` serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # channels
        self.received = Counter(
            "botkit_messages_received",
            "Messages an adapter received: handed to the inbox, or ignored",
            ["channel"],
            registry=r,
        )
        self.messages_in = Counter(
            "botkit_messages_in", "Inbound messages accepted", ["channel"], registry=r
        )
        self.duplicates = Counter(
            "botkit_messages_duplicate", "Inbound messages seen again", ["channel"], registry=r
        )
        self.ignored = Counter(
            "botkit_messages_ignored",
            "Messages not answered: ignored by the adapter, or stored but skipped",
            ["channel", "reason"],
            registry=r,
        )
        self.messages_out = Counter(
            "botkit_messages_out", "Replies delivered", ["channel"], registry=r
        )
        self.send_failures = Counter(
            "botkit_send_failures",
            "Sends and edits a channel refused or that failed",
            ["channel", "kind"],
            registry=r,
        )
        self.rate_limit_waits = Histogram(
            "botkit_rate_limit_wait_seconds",
            "Waits before a call, for a channel's rate limit",
            ["channel", "reason"],
            registry=r,
            buckets=(0.05, 0.25, 1, 2, 5, 10, 30, 60),
        )
        self.failures = Counter(
            "botkit_failures", "Messages or replies that failed", ["stage"], registry=r
        )
        # the pipeline
        self.queue_depth = Gauge(
            "botkit_queue_depth", "Inbound messages waiting or in progress", registry=r
        )
        self.claims_held = Gauge(
            "botkit_claims_held",
            "Messages and replies this process holds claims on (at the last renewal)",
            registry=r,
        )
        self.takeovers = Counter(
            "botkit_lease_takeovers",
            "Work taken over from another process whose claim or lease lapsed",
            ["kind"],
            registry=r,
        )
        # the model
        self.model_latency = Histogram(
            "botkit_model_latency_seconds",
            "Model request latency",
            ["model"],
            registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60),
        )
        self.tokens = Counter("botkit_model_tokens", "Tokens used", ["model", "kind"], registry=r)
        self.cost = Counter("botkit_model_cost_dollars", "Model spend", ["model"], registry=r)
        self.model_errors = Counter(
            "botkit_model_errors", "Model requests that failed", ["model", "kind"], registry=r
        )
        self.unpriced = Counter(
            "botkit_model_unpriced_calls",
            "Model calls whose model has no price in the model table",
            ["model"],
            registry=r,
        )

    def channel(self, name: str) -> ChannelReport:
        """What the adapter of channel ``name`` reports through."""
        return ChannelReport(self, name)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class ChannelReport:
    """An adapter's way to count what only it sees, on its channel's metrics.

    Get one from the inbox in :meth:`Adapter.start` (``inbox.report(self.name)``).

    Args:
        metrics: the bot's metrics; ``None`` counts nothing (an inbox made for a test).
        channel: the adapter's name, the ``channel`` label.
    """

    __slots__ = ("_channel", "_metrics")

    def __init__(self, metrics: Metrics | None, channel: str) -> None:
        self._metrics = metrics
        self._channel = channel

    def ignored(self, reason: str) -> None:
        """An event the adapter received and will not hand to the inbox.

        Args:
            reason: a short, fixed category (``own_message``, ``not_allowed``,
                ``group_chatter``), never free text: each value is a time series.
        """
        if self._metrics is not None:
            self._metrics.received.labels(self._channel).inc()
            self._metrics.ignored.labels(self._channel, reason[:_LABEL_MAX]).inc()

    def rate_limited(self, seconds: float, *, reason: str = "pacing") -> None:
        """The adapter waited ``seconds`` before a call, for the channel's rate limit.

        Args:
            seconds: how long.
            reason: ``pacing`` (the adapter's own spacing, within the documented
                limits) or ``server`` (the channel answered 429 and said how long).
        """
        if self._metrics is not None:
            self._metrics.rate_limit_waits.labels(self._channel, reason).observe(seconds)


def label(text: str) -> str:
    """A free text's category, for a label: up to its first colon, at most 40 characters
    (``"bounce: empty Return-Path"`` is ``bounce``)."""
    return text.split(":", 1)[0].strip()[:_LABEL_MAX] or "other"
