"""The budget plugin: limits checked against the store's recorded spend before each call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botkit import (
    ConfigError,
    Context,
    Message,
    ModelCall,
    Plugin,
    PluginRuntime,
    QuotaExceededError,
    Reply,
)
from botkit.llm import ModelInfo

__all__ = ["BudgetSettings", "Limit", "check_limits", "plugin"]

NANOS_PER_DOLLAR = 1_000_000_000
_ADVERB = {"day": "daily", "month": "monthly"}


@dataclass(frozen=True, slots=True)
class Limit:
    """One spending limit (``[[plugins.budget.limits]]``).

    Attributes:
        scope: ``"user"`` (each person, on each channel), ``"channel"`` (each channel as
            a whole) or ``"bot"`` (everything, scheduled jobs included).
        period: ``"day"`` or ``"month"``: calendar periods in the plugin's ``timezone``.
        tokens: the most tokens (prompt + completion) in one period.
        usd: the most US dollars in one period.
        channels: apply only on these channels; empty: on every channel.
    """

    scope: Literal["user", "channel", "bot"]
    period: Literal["day", "month"]
    tokens: int | None = None
    usd: float | None = None
    channels: tuple[str, ...] = ()

    def problems(self, key: str) -> Iterator[ConfigError]:
        """A limit that cannot work, found when the table is parsed."""
        if (self.tokens is None) == (self.usd is None):
            yield ConfigError(key, "give exactly one of tokens and usd")
        if self.tokens is not None and self.tokens <= 0:
            yield ConfigError(f"{key}.tokens", "must be a positive number of tokens")
        if self.usd is not None and self.usd <= 0:
            yield ConfigError(f"{key}.usd", "must be a positive amount of dollars")


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """``[plugins.budget]``.

    Attributes:
        limits: the limits; every one that applies must have room for a call.
        timezone: where days and months begin (an IANA name, ``"Europe/Berlin"``).
        unlimited_users: sender ids no user or channel limit applies to (the bot's
            limits still do).
    """

    limits: tuple[Limit, ...] = ()
    timezone: str = "UTC"
    unlimited_users: tuple[str, ...] = ()

    def problems(self, key: str) -> Iterator[ConfigError]:
        """An unknown time zone, found when the table is parsed."""
        try:
            _zone(self.timezone, f"{key}.timezone")
        except ConfigError as exc:
            yield exc


plugin = Plugin(
    "budget",
    description="Spending limits per user, channel and bot",
    settings_class=BudgetSettings,
)


@plugin.check_model
def dollar_limits_need_prices(
    settings: BudgetSettings, key: str, model: ModelInfo
) -> Iterator[ConfigError]:
    """A dollar limit on a model without prices could never be reached: refused when
    the config is read, not found out as "$0.00 of $1.00 used" a month later."""
    if model.input_price_per_1k is not None and model.output_price_per_1k is not None:
        return
    for index, limit in enumerate(settings.limits):
        if limit.usd is not None:
            yield ConfigError(
                f"{key}.limits[{index}].usd",
                f"the model {model.name!r} has no prices, so spend in dollars is unknown:"
                f' set input_price_per_1k and output_price_per_1k in [llm.models."{model.name}"],'
                " or limit tokens instead",
            )


@plugin.before_model_call
async def enforce(call: ModelCall, runtime: PluginRuntime) -> None:
    """Refuse the call when a limit that applies to it has no room left.

    Raises:
        QuotaExceededError: naming the limit, what was used and when it resets.
    """
    refusal = await check_limits(
        runtime,
        runtime.settings_as(BudgetSettings),
        call.message,
        call.prompt_tokens,
        before_reservation=call.reservation_id,
    )
    if refusal is not None:
        raise QuotaExceededError("budget", refusal, code="budget_exceeded")


async def check_limits(
    runtime: PluginRuntime,
    settings: BudgetSettings,
    message: Message | None,
    prompt_tokens: int = 0,
    *,
    now: datetime | None = None,
    before_reservation: int | None = None,
) -> str | None:
    """Why a call of ``prompt_tokens`` for ``message`` may not be made, or ``None``.

    A token limit refuses a call whose prompt would take the period's total past it; a
    dollar limit refuses once the period's spend has reached it (the price of a reply
    is only known afterwards, so one call can go past a dollar limit, never two). Calls
    being made count with their worst case (their spend reservations; with
    ``before_reservation``, the caller's own, those made before it), so calls made at
    once, in one process or several, cannot pass a limit together.
    """
    moment = now or datetime.now(UTC)
    zone = _zone(settings.timezone, "timezone")
    for limit in settings.limits:
        if not _applies(limit, message, settings):
            continue
        start, reset = _period(limit.period, moment, zone)
        user = message.sender.id if message is not None and limit.scope == "user" else None
        channel = message.channel if message is not None and limit.scope != "bot" else None
        tokens, nanos = await runtime.store.spend(
            since=start, user_id=user, channel=channel, before_reservation=before_reservation
        )
        if limit.tokens is not None and tokens + prompt_tokens > limit.tokens:
            return (
                f"{_whose(limit, message)} {_ADVERB[limit.period]} limit of "
                f"{limit.tokens:,} tokens is used up ({tokens:,} used); it resets {_when(reset)}"
            )
        if limit.usd is not None and nanos >= _nanos(limit.usd):
            return (
                f"{_whose(limit, message)} {_ADVERB[limit.period]} limit of ${limit.usd:.2f} "
                f"is spent (${_dollars(nanos)} used); it resets {_when(reset)}"
            )
    return None


def _applies(limit: Limit, message: Message | None, settings: BudgetSettings) -> bool:
    if limit.scope == "bot":
        return not limit.channels or (message is not None and message.channel in limit.channels)
    if message is None:
        return False  # a scheduled job has no user or channel to charge
    if message.sender.id in settings.unlimited_users:
        return False
    return not limit.channels or message.channel in limit.channels


def _whose(limit: Limit, message: Message | None) -> str:
    if limit.scope == "user":
        return "your"
    if limit.scope == "channel" and message is not None:
        return f"the {message.channel} channel's"
    return "the bot's"


def _period(period: str, now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The start of the period ``now`` is in, and the start of the next one."""
    local = now.astimezone(zone)
    if period == "day":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        following = (start + timedelta(days=1, hours=2)).replace(hour=0)
    else:
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        following = (start + timedelta(days=32)).replace(day=1)
    return start.astimezone(UTC), following.replace(tzinfo=zone)


def _when(reset: datetime) -> str:
    return f"at {reset:%Y-%m-%d %H:%M} {reset.tzname()}"


def _dollars(nanos: int) -> str:
    return f"{Decimal(nanos) / NANOS_PER_DOLLAR:.2f}"


def _nanos(usd: float) -> int:
    return int(Decimal(str(usd)) * NANOS_PER_DOLLAR)


def _zone(name: str, key: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(key, f"{name!r} is not a known time zone") from None


@plugin.on_command("budget", description="How much of your spending limits is left")
async def budget(message: Message, ctx: Context) -> Reply:
    """Show each limit that applies to the sender, with what is used."""
    settings = ctx.settings_as(BudgetSettings)
    zone = _zone(settings.timezone, "timezone")
    now = datetime.now(UTC)
    info = ctx.llm.model_info()
    priced = info.input_price_per_1k is not None and info.output_price_per_1k is not None
    lines = []
    for limit in settings.limits:
        if not _applies(limit, message, settings):
            continue
        start, reset = _period(limit.period, now, zone)
        user = message.sender.id if limit.scope == "user" else None
        channel = message.channel if limit.scope != "bot" else None
        tokens, nanos = await ctx.store.spend(since=start, user_id=user, channel=channel)
        if limit.tokens is not None:
            used, cap = f"{tokens:,} tokens", f"{limit.tokens:,} tokens"
        elif priced:
            used, cap = f"${_dollars(nanos)}", f"${limit.usd:.2f}"
        else:  # no prices: what was spent is not known, and is not $0.00
            used, cap = "an unknown amount (the model has no prices)", f"${limit.usd:.2f}"
        whose = _whose(limit, message).capitalize()
        lines.append(
            f"{whose} {_ADVERB[limit.period]} limit: {used} of {cap} used (resets {_when(reset)})"
        )
    if not lines:
        return Reply("No spending limit applies to you.", markup="plain")
    return Reply("\n".join(lines), markup="plain")
