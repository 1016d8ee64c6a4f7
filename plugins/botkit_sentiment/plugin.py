"""The sentiment plugin: a classifying middleware, escalation and ``/sentiment``."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from botkit import (
    ChatRequest,
    ConfigError,
    Context,
    ConversationRef,
    HandlerResult,
    JsonSchema,
    Message,
    Next,
    Plugin,
    Reply,
    ServiceError,
)

__all__ = ["LABELS", "SentimentReport", "SentimentSettings", "plugin", "report_of"]

log = logging.getLogger(__name__)

LABELS = ("positive", "neutral", "negative")
UNKNOWN = "unknown"
DEFAULT_INSTRUCTION = (
    "Classify the sentiment of the user's message towards the conversation or its "
    "subject. Judge the writer's tone, in whatever language they write."
)
SCHEMA = JsonSchema(
    "sentiment",
    {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": list(LABELS)},
            "score": {"type": "number"},
        },
        "required": ["label", "score"],
        "additionalProperties": False,
    },
)


@dataclass(frozen=True, slots=True)
class SentimentSettings:
    """``[plugins.sentiment]``.

    Attributes:
        channels: classify messages on these channels only; empty: all.
        min_chars: shorter messages (and commands) are not classified.
        instruction: what the model is told, before the answer format.
        escalate_to: where to send a notice about a strongly negative message.
        escalate_below: a negative message with a score at or below this (-1 to 1) is
            escalated.
        report_messages: how many recent messages ``/sentiment`` looks at.
    """

    channels: tuple[str, ...] = ()
    min_chars: int = 3
    instruction: str = DEFAULT_INSTRUCTION
    escalate_to: ConversationRef | None = None
    escalate_below: float = -0.6
    report_messages: int = 100

    def problems(self, key: str) -> Iterator[ConfigError]:
        """A threshold outside the score's range, found when the table is parsed."""
        if not -1 <= self.escalate_below <= 1:
            yield ConfigError(f"{key}.escalate_below", "must be between -1 and 1")
        if self.report_messages < 1:
            yield ConfigError(f"{key}.report_messages", "must be at least 1")


plugin = Plugin(
    "sentiment",
    description="Sentiment of each message, for other plugins and reports",
    settings_class=SentimentSettings,
)


@plugin.middleware
async def classify(message: Message, ctx: Context, call_next: Next) -> HandlerResult:
    """Classify the message, store the result with it, escalate; then pass it on."""
    settings = ctx.settings_as(SentimentSettings)
    text = message.text.strip()
    wanted = (
        len(text) >= settings.min_chars
        and not text.startswith("/")
        and (not settings.channels or message.channel in settings.channels)
        and "sentiment" not in ctx.annotations  # a released message was classified before
    )
    if wanted:
        label, score = await _classify(ctx, settings, text)
        await ctx.annotate(sentiment=label, sentiment_score=score)
        if (
            settings.escalate_to is not None
            and label == "negative"
            and score is not None
            and score <= settings.escalate_below
        ):
            await _escalate(message, ctx, settings.escalate_to, score)
    return await call_next()


async def _classify(
    ctx: Context, settings: SentimentSettings, text: str
) -> tuple[str, float | None]:
    """The label and score (-1 to 1); ``("unknown", None)`` when the model fails."""
    try:
        completion = await ctx.llm.complete(
            ChatRequest(
                [
                    {
                        "role": "system",
                        "content": f"{settings.instruction}\nAnswer in JSON: label is "
                        "positive, neutral or negative; score runs from -1 (very negative) "
                        "through 0 (neutral) to 1 (very positive).",
                    },
                    {"role": "user", "content": text[:4000]},
                ],
                response_format=SCHEMA,
                max_tokens=40,
                temperature=0,
                purpose="sentiment",
            )
        )
    except ServiceError as exc:  # invalid JSON included: never hold the message up
        log.warning("sentiment of message %s unknown: %s", ctx.message.id, exc)
        return UNKNOWN, None
    label = str(completion.parsed["label"])
    score = max(-1.0, min(1.0, float(completion.parsed["score"])))
    # some models give a confidence (0 to 1) instead: the label says which side it is on
    if label == "negative":
        score = -abs(score)
    elif label == "positive":
        score = abs(score)
    return label, round(score, 3)


async def _escalate(message: Message, ctx: Context, to: ConversationRef, score: float) -> None:
    excerpt = " ".join(message.text.split())[:300]
    notice = (
        f"Strongly negative message ({score:+.2f}) from {message.sender.display_name} "
        f"in {message.conversation.key} (message {message.id}):\n> {excerpt}"
    )
    await ctx.notify(to, notice)
    await ctx.annotate(sentiment_escalated=True)


@dataclass(frozen=True, slots=True)
class SentimentReport:
    """Sentiment over a set of messages.

    Attributes:
        counts: messages per label (``"unknown"`` included).
        average: the mean score of the classified ones, ``None`` if none.
        by_sender: per sender name, their mean score.
        most_negative: the lowest-scored message as ``(score, sender, text)``.
    """

    counts: Mapping[str, int]
    average: float | None
    by_sender: Mapping[str, float]
    most_negative: tuple[float, str, str] | None

    @property
    def total(self) -> int:
        """Messages counted."""
        return sum(self.counts.values())


def report_of(rows: Iterable[tuple[str, Mapping[str, Any], str]]) -> SentimentReport:
    """Aggregate ``(sender, metadata, text)`` of stored messages into a report."""
    counts: Counter[str] = Counter()
    scores: list[float] = []
    per_sender: dict[str, list[float]] = {}
    worst: tuple[float, str, str] | None = None
    for sender, meta, text in rows:
        label = meta.get("sentiment")
        if not isinstance(label, str):
            continue
        counts[label] += 1
        score = meta.get("sentiment_score")
        if isinstance(score, int | float):
            scores.append(float(score))
            per_sender.setdefault(sender, []).append(float(score))
            if worst is None or score < worst[0]:
                worst = (float(score), sender, text)
    return SentimentReport(
        counts=dict(counts),
        average=sum(scores) / len(scores) if scores else None,
        by_sender={k: sum(v) / len(v) for k, v in per_sender.items()},
        most_negative=worst,
    )


@plugin.on_command("sentiment", description="The mood of this conversation lately")
async def sentiment_report(message: Message, ctx: Context) -> Reply:
    """Report the sentiment of the conversation's recent messages."""
    settings = ctx.settings_as(SentimentSettings)
    arg = ctx.args.strip()
    limit = int(arg) if arg.isdigit() and int(arg) > 0 else settings.report_messages
    rows = [r for r in await ctx.history(limit=limit) if r.direction == "in"]
    report = report_of((r.sender_name or r.sender_id or "?", r.meta, r.text) for r in rows)
    if not report.total:
        return Reply("No message here has a sentiment yet.", markup="plain")
    parts = [f"{report.counts.get(label, 0)} {label}" for label in (*LABELS, UNKNOWN)]
    lines = [f"Sentiment of the last {report.total} messages: {', '.join(parts)}."]
    if report.average is not None:
        lines.append(f"Average score: {report.average:+.2f} (-1 very negative, +1 very positive).")
    if len(report.by_sender) > 1:
        people = sorted(report.by_sender.items(), key=lambda item: item[1])
        lines.append("By person: " + ", ".join(f"{n} {s:+.2f}" for n, s in people) + ".")
    if report.most_negative is not None and report.most_negative[0] < 0:
        score, sender, text = report.most_negative
        lines.append(f"Most negative ({score:+.2f}, {sender}): {' '.join(text.split())[:160]}")
    return Reply("\n".join(lines), markup="plain")
