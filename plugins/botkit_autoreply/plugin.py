"""The autoreply plugin: the first matching rule answers, drafts, hands off or ignores."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from botkit import (
    ChatRequest,
    Context,
    HandlerResult,
    JsonSchema,
    Message,
    Plugin,
    Reply,
    ServiceError,
    SkipHandler,
)
from botkit_autoreply.rules import AutoreplySettings, Rule, active_range, matches

__all__ = ["plugin"]

log = logging.getLogger(__name__)

#: The email adapter's mark on mail it must not answer automatically (RFC 3834).
SKIPPED = "autoreply_skipped"
ROUTES = ("answer", "handoff", "ignore")
_ROUTE = JsonSchema(
    "route",
    {
        "type": "object",
        "properties": {
            "route": {"type": "string", "enum": list(ROUTES)},
            "reason": {"type": "string"},
        },
        "required": ["route", "reason"],
        "additionalProperties": False,
    },
)

plugin = Plugin(
    "autoreply",
    description="Automatic replies by rule: templates, drafts by the model, hand-offs",
    settings_class=AutoreplySettings,
)


def _not_command(message: Message) -> bool:
    return not message.text.lstrip().startswith("/")


# A predicate handler: tried after commands, before the catch-all chat skill.
@plugin.on_message(_not_command)
async def autoreply(message: Message, ctx: Context) -> HandlerResult:
    """Answer by the first rule that matches; pass the message on when none does."""
    skipped = message.metadata.get(SKIPPED)
    if skipped:
        # the email adapter's loop guard: an automatic answer must never go out
        log.info("not auto-answering %s: %s", message.external_id, skipped)
        return None
    now = message.received_at
    rule = next(
        (r for r in ctx.settings_as(AutoreplySettings).rules if matches(r, message, now)), None
    )
    if rule is None:
        raise SkipHandler
    cooldown_key = f"answered:{rule.name}:{message.channel}:{message.sender.id}"
    if rule.cooldown_minutes:
        last = await ctx.state.get(cooldown_key)
        if last and now - datetime.fromisoformat(last) < timedelta(minutes=rule.cooldown_minutes):
            await ctx.annotate(autoreply_rule=rule.name, autoreply_route="cooldown")
            return None
    route, reason = "answer", ""
    if rule.classify is not None:
        route, reason = await _classify(ctx, rule, message)
        if route == "pass":
            raise SkipHandler
    await ctx.annotate(autoreply_rule=rule.name, autoreply_route=route, autoreply_reason=reason)
    if route == "ignore":
        return None
    if route == "handoff":
        await _hand_off(ctx, rule, message, reason)
        return Reply(rule.handoff_reply, markup="plain") if rule.handoff_reply else None
    answer = await _answer(ctx, rule, message)
    if rule.cooldown_minutes:
        await ctx.state.set(cooldown_key, now.isoformat())
    return answer


async def _classify(ctx: Context, rule: Rule, message: Message) -> tuple[str, str]:
    """The route the model picks, or the rule's ``on_error`` when it fails."""
    try:
        completion = await ctx.llm.complete(
            ChatRequest(
                [
                    {
                        "role": "system",
                        "content": f"You route incoming messages. {rule.classify}\nAnswer "
                        "in JSON: route is answer (an automatic answer is right), handoff "
                        "(a person must handle it) or ignore (no answer is needed); reason "
                        "says why in a few words.",
                    },
                    {"role": "user", "content": _quoted(message)},
                ],
                response_format=_ROUTE,
                max_tokens=80,
                temperature=0,
                purpose="autoreply",
            )
        )
    except ServiceError as exc:
        log.warning("autoreply rule %r could not classify: %s", rule.name, exc)
        return rule.on_error, f"classification failed: {exc.reason}"
    return str(completion.parsed["route"]), str(completion.parsed["reason"])


async def _answer(ctx: Context, rule: Rule, message: Message) -> Reply:
    if rule.instruction is None:
        assert rule.reply is not None  # checked at start
        return Reply(_fill(rule.reply, rule, message), markup="plain")
    completion = await ctx.llm.complete(
        ChatRequest(
            [
                {
                    "role": "system",
                    "content": f"{rule.instruction}\n\nWrite the reply to the message "
                    "below, in the language it is written in. Answer with the reply text "
                    "only.",
                },
                {"role": "user", "content": _quoted(message)},
            ],
            max_tokens=700,
            purpose="autoreply",
        )
    )
    return Reply(completion.content or "")


async def _hand_off(ctx: Context, rule: Rule, message: Message, reason: str) -> None:
    if rule.handoff_to is None:
        return
    excerpt = " ".join(message.text.split())[:500]
    notice = (
        f"For a person (rule {rule.name}): {message.sender.display_name} wrote in "
        f"{message.conversation.key} (message {message.id})"
        f"{f'; {reason}' if reason else ''}:\n> {excerpt}"
    )
    await ctx.notify(rule.handoff_to, notice)


def _quoted(message: Message) -> str:
    return f"From: {message.sender.display_name}\n\n{message.text[:8000]}"


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(template: str, rule: Rule, message: Message) -> str:
    """The template with its fields filled; unknown fields stay as written."""
    local_day = message.received_at.astimezone(ZoneInfo(rule.timezone)).date()
    span = active_range(rule, local_day)
    until = date.fromisoformat(span.end) if span is not None else None
    values = _Blank(
        sender=message.sender.display_name,
        channel=message.channel,
        rule=rule.name,
        until=f"{until:%A %-d %B %Y}" if until else "",
    )
    try:
        return template.format_map(values)
    except (ValueError, IndexError):
        return template
