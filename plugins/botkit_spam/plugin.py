"""The spam plugin: a middleware that holds spam, and ``/release`` for false positives."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

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
    ServiceError,
)

__all__ = ["SpamSettings", "Verdict", "plugin", "score_text"]

log = logging.getLogger(__name__)

DEFAULT_PATTERNS = (
    r"\b(?:crypto|bitcoin|forex)\b.{0,40}\b(?:invest|profit|returns?|signals?)\b",
    r"\bearn \$?\d[\d,]*\s*(?:k|usd|dollars)?\s*(?:a|per|/)\s*(?:day|week|hour)\b",
    r"\b(?:viagra|cialis|casino|betting tips|onlyfans)\b",
    r"\b(?:click|tap) (?:here|the link|below)\b.{0,60}\b(?:free|win|claim|prize)\b",
    r"\b(?:you (?:have )?won|claim your (?:prize|reward)|free (?:gift|iphone))\b",
    r"\b(?:dm|message|contact) me (?:on|via) (?:whatsapp|telegram)\b",
)
DEFAULT_INSTRUCTION = (
    "You are a spam filter for a chat bot. Decide whether the message is unsolicited "
    "advertising, a scam, phishing or bulk junk. Ordinary questions, complaints and "
    "messages in any language are not spam."
)
_LINK = re.compile(
    r"(?:https?://|www\.)\S+|\b[\w-]+\.(?:com|net|org|io|ru|xyz|top|link)/\S*", re.I
)
_VERDICT = JsonSchema(
    "spam_verdict",
    {
        "type": "object",
        "properties": {"spam": {"type": "boolean"}, "reason": {"type": "string"}},
        "required": ["spam", "reason"],
        "additionalProperties": False,
    },
)


@dataclass(frozen=True, slots=True)
class SpamSettings:
    """``[plugins.spam]``.

    Attributes:
        admins: who may ``/release`` held messages: sender ids (``"U123"``) or
            ``"channel:id"`` (``"telegram:42"``). Admins are never filtered.
        allow_senders: sender ids (or ``"channel:id"``) never filtered.
        channels: filter only these channels; empty: all.
        max_links: more links than this in one message is a strong sign of spam.
        patterns: regular expressions (case-insensitive) of known spam; each match
            counts as a strong sign.
        caps_min_letters: messages with at least this many letters are checked for
            shouting.
        caps_ratio: the share of capitals from which a message counts as shouting.
        repeat_count: the same text this many times from one sender in one conversation
            (this message included) is a sign of flooding.
        spam_score: heuristics scoring at least this hold a message without asking the
            model.
        unsure_score: heuristics scoring at least this (and below ``spam_score``) ask
            the model; below it a message passes.
        use_model: ask the model when unsure; when false, unsure messages pass.
        instruction: the model's instructions for the unsure cases.
        notify: where to report held messages (with their id, for ``/release``).
    """

    admins: tuple[str, ...] = ()
    allow_senders: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    max_links: int = 2
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    caps_min_letters: int = 20
    caps_ratio: float = 0.7
    repeat_count: int = 3
    spam_score: float = 1.0
    unsure_score: float = 0.4
    use_model: bool = True
    instruction: str = DEFAULT_INSTRUCTION
    notify: ConversationRef | None = None

    def problems(self, key: str) -> Iterator[ConfigError]:
        """A pattern that is not a regular expression, or thresholds out of order; found
        when the table is parsed."""
        for index, pattern in enumerate(self.patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                yield ConfigError(f"{key}.patterns[{index}]", str(exc))
        if not 0 < self.unsure_score <= self.spam_score:
            yield ConfigError(f"{key}.unsure_score", "must be above 0 and at most spam_score")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the heuristics found.

    Attributes:
        score: the sum of the signs' weights (0 is clean).
        reasons: one phrase per sign.
    """

    score: float
    reasons: tuple[str, ...] = field(default=())

    @property
    def reason(self) -> str:
        """The reasons joined."""
        return "; ".join(self.reasons) or "no sign of spam"


plugin = Plugin(
    "spam", description="Holds spam before it reaches the model", settings_class=SpamSettings
)


def score_text(text: str, settings: SpamSettings, *, repeats: int = 1) -> Verdict:
    """Score a message with the cheap signs alone (no store, no model).

    Args:
        text: the message.
        settings: thresholds and patterns.
        repeats: how many times its sender has sent this text, this time included.
    """
    score = 0.0
    reasons: list[str] = []
    links = len(_LINK.findall(text))
    if links > settings.max_links:
        score += 1.0
        reasons.append(f"{links} links")
    elif links:
        score += 0.2 * links
        reasons.append(f"{links} link{'s' if links > 1 else ''}")
    for pattern in settings.patterns:
        found = re.search(pattern, text, re.IGNORECASE | re.DOTALL)
        if found:
            score += 0.6
            reasons.append(f"known spam phrase {found.group(0)[:40]!r}")
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= settings.caps_min_letters:
        capitals = sum(c.isupper() for c in letters) / len(letters)
        if capitals >= settings.caps_ratio:
            score += 0.4
            reasons.append(f"{capitals:.0%} capitals")
    if repeats >= settings.repeat_count:
        score += 0.6
        reasons.append(f"the same text {repeats} times")
    return Verdict(round(score, 3), tuple(reasons))


def _listed(message: Message, entries: tuple[str, ...]) -> bool:
    return message.sender.id in entries or f"{message.channel}:{message.sender.id}" in entries


@plugin.middleware
async def filter_spam(message: Message, ctx: Context, call_next: Next) -> HandlerResult:
    """Hold spam here, before any other middleware or handler spends anything on it."""
    settings = ctx.settings_as(SpamSettings)
    if (
        ctx.annotations.get("spam_released")
        or (settings.channels and message.channel not in settings.channels)
        or _listed(message, settings.admins + settings.allow_senders)
        or not message.text.strip()
    ):
        return await call_next()
    verdict = score_text(message.text, settings, repeats=await _repeats(message, ctx))
    if verdict.score >= settings.spam_score:
        await _hold(message, ctx, settings, verdict.reason, "heuristics", verdict.score)
        return None
    if verdict.score < settings.unsure_score or not settings.use_model:
        return await call_next()
    try:
        completion = await ctx.llm.complete(
            ChatRequest(
                [
                    {
                        "role": "system",
                        "content": f"{settings.instruction}\nAnswer in JSON: spam (true or "
                        "false) and reason (a few words).",
                    },
                    {
                        "role": "user",
                        "content": f"Signs found: {verdict.reason}.\nMessage:\n"
                        f"{message.text[:4000]}",
                    },
                ],
                response_format=_VERDICT,
                max_tokens=60,
                temperature=0,
                purpose="spam",
            )
        )
    except ServiceError as exc:
        # fail open: a false positive costs a person an answer, a miss costs tokens
        log.warning("spam check of message %s failed, letting it through: %s", message.id, exc)
        await ctx.annotate(spam="unknown", spam_reason=f"the model check failed: {exc.reason}")
        return await call_next()
    parsed = completion.parsed
    reason = str(parsed.get("reason") or verdict.reason)
    if parsed.get("spam") is True:
        await _hold(message, ctx, settings, reason, "model", verdict.score)
        return None
    await ctx.annotate(spam=False, spam_reason=reason, spam_by="model", spam_score=verdict.score)
    return await call_next()


async def _repeats(message: Message, ctx: Context) -> int:
    """How many times the sender sent this text lately here, this time included."""
    text = " ".join(message.text.lower().split())
    rows = await ctx.history(limit=30)
    earlier = sum(
        1
        for row in rows
        if row.direction == "in"
        and row.id != message.id
        and row.sender_id == message.sender.id
        and " ".join(row.text.lower().split()) == text
    )
    return earlier + 1


async def _hold(
    message: Message, ctx: Context, settings: SpamSettings, reason: str, by: str, score: float
) -> None:
    await ctx.annotate(spam=True, spam_reason=reason, spam_by=by, spam_score=score)
    log.info("held message %s from %s as spam: %s", message.id, message.sender.id, reason)
    if settings.notify is not None:
        excerpt = " ".join(message.text.split())[:200]
        notice = (
            f"Held as spam ({by}): message {message.id} from "
            f"{message.sender.display_name} in {message.conversation.key}: {reason}.\n"
            f"> {excerpt}\nRelease it with /release {message.id}"
        )
        await ctx.notify(settings.notify, notice)


@plugin.on_command("release", description="Release a message held as spam (admins)")
async def release(message: Message, ctx: Context) -> str:
    """Let a message held as spam through: it is handled as if it had just arrived."""
    settings = ctx.settings_as(SpamSettings)
    if not _listed(message, settings.admins):
        return "Only an admin can release held messages."
    if not ctx.args.strip().isdigit():
        return "Usage: /release <message id>"
    held_id = int(ctx.args.strip())
    rows = await ctx.store.messages([held_id])
    if not rows or rows[0].direction != "in" or rows[0].meta.get("spam") is not True:
        return f"Message {held_id} is not held as spam."
    if rows[0].meta.get("spam_released"):
        return f"Message {held_id} was already released."
    await ctx.requeue(held_id, spam_released=True, spam_released_by=message.sender.id)
    return f"Released message {held_id}; it will be answered now."
