"""Auto-replies: rule matching, templates, model drafts, classification and routing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from botkit import ConfigError, ConversationRef, Message, Sender
from botkit.testing import FakeModel
from botkit_autoreply import DateRange, Rule, matches
from botkit_autoreply import plugin as autoreply
from botkit_chat import plugin as chat
from tests.plugins.conftest import StartBot

BERLIN = "Europe/Berlin"


def _message(
    text: str = "hello", *, channel: str = "email", sender: str = "ann@example.com"
) -> Message:
    return Message(ConversationRef(channel, "inbox"), Sender(sender), text, "x1")


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in Berlin in the week of Monday 2024-06-03 (summer time, UTC+2)."""
    return datetime(2024, 6, day, hour, minute, tzinfo=UTC) - timedelta(hours=2)


def test_office_hours_match_inside_or_outside_the_window_in_its_time_zone() -> None:
    office = Rule(
        "office", timezone=BERLIN, hours="09:00-17:00", days=("mon", "tue", "wed", "thu", "fri")
    )
    after = Rule(
        "after",
        timezone=BERLIN,
        hours="09:00-17:00",
        days=("mon", "tue", "wed", "thu", "fri"),
        outside=True,
    )
    message = _message()
    assert matches(office, message, _at(3, 9, 0))  # Monday 09:00 Berlin = 07:00 UTC
    assert not matches(office, message, _at(3, 17, 0))
    assert matches(after, message, _at(3, 17, 0))
    assert matches(after, message, _at(8, 12, 0))  # Saturday noon
    assert not matches(after, message, _at(7, 16, 59))


def test_a_night_window_runs_past_midnight_on_the_day_it_opened() -> None:
    night = Rule("night", timezone=BERLIN, hours="22:00-06:00", days=("fri",))
    message = _message()
    assert matches(night, message, _at(7, 23, 0))  # Friday 23:00
    assert matches(night, message, _at(8, 5, 59))  # Saturday 05:59: Friday's night
    assert not matches(night, message, _at(8, 6, 0))
    assert not matches(night, message, _at(6, 23, 0))  # Thursday


def test_out_of_office_dates_senders_keywords_patterns_and_channels() -> None:
    away = Rule("away", timezone=BERLIN, dates=(DateRange("2024-06-04", "2024-06-05"),))
    assert not matches(away, _message(), _at(3, 23, 59))
    assert matches(away, _message(), _at(4, 0, 0))
    assert matches(away, _message(), _at(5, 23, 59))
    assert not matches(away, _message(), _at(6, 0, 0))
    billing = Rule(
        "billing",
        channels=("email",),
        senders=("*@example.com",),
        keywords=("invoice", "credit note"),
        pattern=r"#\d{4,}",
    )
    now = _at(3, 12)
    assert matches(billing, _message("Invoice for order #12345"), now)
    assert matches(billing, _message("need a CREDIT  NOTE for #12345"), now)
    assert not matches(billing, _message("invoices for #12345"), now)  # whole words only
    assert not matches(billing, _message("invoice for order 12"), now)
    assert not matches(billing, _message("invoice #12345", sender="bob@other.org"), now)
    assert not matches(billing, _message("invoice #12345", channel="slack"), now)


def _rules(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"autoreply": {"rules": list(rules)}}


async def test_a_template_answers_and_other_messages_go_to_the_chat_skill(
    start_bot: StartBot,
) -> None:
    today = datetime.now(UTC).date()
    rule = {
        "name": "vacation",
        "channels": ["test"],
        "dates": [
            {"start": str(today - timedelta(days=1)), "end": str(today + timedelta(days=2))}
        ],
        "keywords": ["meeting"],
        "reply": "Hi {sender}, I'm away until {until}. ({rule}, {unknown})",
    }
    model = FakeModel()
    async with start_bot(plugins=[autoreply, chat], model=model, settings=_rules(rule)) as bot:
        answer = await bot.ask("Can we have a meeting?", name="Ann")
        stored = await bot.stored()
        assert await bot.ask("What is 2+2?") == "echo: What is 2+2?"
    until = today + timedelta(days=2)
    assert answer == f"Hi Ann, I'm away until {until:%A %-d %B %Y}. (vacation, {{unknown}})"
    assert len(model.requests) == 1  # only the chat answer
    assert stored.meta["autoreply_rule"] == "vacation"


async def test_the_model_drafts_an_answer_from_the_rules_instruction(start_bot: StartBot) -> None:
    rule = {
        "name": "prices",
        "keywords": ["price"],
        "instruction": "Say prices are on the website.",
    }
    model = FakeModel().reply("Our prices are listed at example.com/prices.", purpose="autoreply")
    async with start_bot(plugins=[autoreply, chat], model=model, settings=_rules(rule)) as bot:
        assert await bot.ask("What's the price?", name="Bo") == (
            "Our prices are listed at example.com/prices."
        )
    [request] = model.requests
    assert request.purpose == "autoreply"
    assert request.messages[0]["content"].startswith("Say prices are on the website.")
    assert request.messages[1]["content"] == "From: Bo\n\nWhat's the price?"


async def test_classification_routes_to_answer_handoff_or_ignore(start_bot: StartBot) -> None:
    rule = {
        "name": "support",
        "classify": "Hand refunds and legal threats to a person; ignore thank-you notes.",
        "reply": "Thanks, we are on it.",
        "handoff_to": {"channel": "ops", "chat_id": "support-team"},
        "handoff_reply": "A colleague will reply personally.",
    }
    model = FakeModel()
    model.reply_json({"route": "answer", "reason": "simple question"}, purpose="autoreply")
    model.reply_json({"route": "handoff", "reason": "refund request"}, purpose="autoreply")
    model.reply_json({"route": "ignore", "reason": "a thank-you"}, purpose="autoreply")
    async with start_bot(
        plugins=[autoreply, chat],
        model=model,
        settings=_rules(rule),
        channels=["test", "ops"],
    ) as bot:
        assert await bot.ask("where is my parcel?") == "Thanks, we are on it."
        assert (
            await bot.ask("I want my money back", name="Cy")
            == "A colleague will reply personally."
        )
        assert await bot.send("thanks a lot!") == []
        ignored = await bot.stored()
    [notice] = [s.text for s in bot.channels["ops"].sent]
    assert notice.startswith("For a person (rule support): Cy wrote in test:chat:")
    assert "refund request" in notice
    assert "I want my money back" in notice
    assert ignored.status == "skipped"
    assert ignored.meta["autoreply_route"] == "ignore"
    assert ignored.meta["autoreply_reason"] == "a thank-you"
    schema = model.requests[0].response_format
    assert getattr(schema, "name", None) == "route"


async def test_an_invalid_classification_takes_the_rules_fallback_route(
    start_bot: StartBot,
) -> None:
    rules = _rules(
        {
            "name": "strict",
            "keywords": ["urgent"],
            "classify": "x",
            "reply": "ok",
            "on_error": "handoff",
            "handoff_to": {"channel": "test", "chat_id": "staff"},
        },
        {
            "name": "lenient",
            "keywords": ["hello"],
            "classify": "x",
            "reply": "ok",
            "on_error": "pass",
            "handoff_to": {"channel": "test", "chat_id": "staff"},
        },
    )
    model = FakeModel().reply("route: answer", purpose="autoreply")  # not JSON
    model.reply("{broken", purpose="autoreply")
    async with start_bot(plugins=[autoreply, chat], model=model, settings=rules) as bot:
        assert await bot.ask("urgent: server down") == (
            "Thank you. A person will get back to you soon."
        )
        route = (await bot.stored()).meta
        assert await bot.ask("hello there") == "echo: hello there"  # passed on to chat
    assert route["autoreply_route"] == "handoff"
    assert "classification failed" in route["autoreply_reason"]


async def test_mail_the_email_adapter_marked_is_never_auto_answered(start_bot: StartBot) -> None:
    rule = {"name": "all-mail", "channels": ["email"], "reply": "Thanks for your mail."}
    model = FakeModel()
    async with start_bot(
        plugins=[autoreply, chat], model=model, settings=_rules(rule), channels=["email"]
    ) as bot:
        skipped = {"autoreply_skipped": "auto_submitted: Auto-Submitted: auto-replied"}
        assert await bot.send("I am out of office", metadata=skipped) == []
        assert (await bot.stored()).status == "skipped"
        assert await bot.ask("a real question", chat="t2") == "Thanks for your mail."
    assert model.requests == []  # neither the rule nor the chat skill spent anything


async def test_a_cooldown_answers_each_sender_once(start_bot: StartBot) -> None:
    rule = {"name": "ooo", "reply": "I'm away.", "cooldown_minutes": 60}
    async with start_bot(plugins=[autoreply, chat], settings=_rules(rule)) as bot:
        assert await bot.ask("one") == "I'm away."
        assert await bot.send("two") == []
        assert (await bot.stored()).meta["autoreply_route"] == "cooldown"
        assert await bot.ask("three", user="other", chat="c2") == "I'm away."


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        ({"name": "a"}, r"rules\[0\]: give reply"),
        ({"name": "a", "reply": "x", "pattern": "("}, r"rules\[0\]\.pattern"),
        ({"name": "a", "reply": "x", "timezone": "Mars/Base"}, r"rules\[0\]\.timezone"),
        ({"name": "a", "reply": "x", "hours": "9-17"}, r"rules\[0\]\.hours"),
        ({"name": "a", "reply": "x", "days": ["funday"]}, r"rules\[0\]\.days"),
        ({"name": "a", "reply": "x", "outside": True}, r"rules\[0\]\.outside"),
        ({"name": "a", "reply": "x", "classify": "route"}, r"rules\[0\]\.handoff_to: is required"),
        (
            {"name": "a", "reply": "x", "dates": [{"start": "2024-02-02", "end": "2024-01-01"}]},
            r"rules\[0\]\.dates\[0\]: end is before start",
        ),
    ],
)
async def test_bad_rules_stop_the_bot_at_start(
    start_bot: StartBot, rule: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError, match=rf"plugins\.autoreply\.{key}"):
        async with start_bot(plugins=[autoreply], settings=_rules(rule)):
            pass
