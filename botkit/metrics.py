"""Prometheus metrics of one bot (its own registry: no module-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    """The counters, gauges and histograms ``/metrics`` serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = Counter(
            "botkit_messages_in", "Inbound messages accepted", ["channel"], registry=r
        )
        self.duplicates = Counter(
            "botkit_messages_duplicate", "Inbound messages seen again", ["channel"], registry=r
        )
        self.messages_out = Counter(
            "botkit_messages_out", "Replies delivered", ["channel"], registry=r
        )
        self.failures = Counter(
            "botkit_failures", "Messages or replies that failed", ["stage"], registry=r
        )
        self.queue_depth = Gauge(
            "botkit_queue_depth", "Inbound messages waiting or in progress", registry=r
        )
        self.model_latency = Histogram(
            "botkit_model_latency_seconds",
            "Model request latency",
            ["model"],
            registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60),
        )
        self.tokens = Counter("botkit_model_tokens", "Tokens used", ["model", "kind"], registry=r)
        self.cost = Counter("botkit_model_cost_dollars", "Model spend", ["model"], registry=r)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
