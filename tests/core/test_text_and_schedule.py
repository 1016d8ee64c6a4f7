"""Splitting long replies, and interval/cron schedules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from botkit import split_text
from botkit.schedule import CronSchedule, IntervalSchedule


def test_short_text_is_one_piece_and_empty_text_none() -> None:
    assert split_text("hello", 100) == ["hello"]
    assert split_text("", 100) == []


def test_split_prefers_paragraphs_then_sentences_and_keeps_everything() -> None:
    text = ("First sentence here. Second one follows. " * 5).strip() + "\n\n" + "Tail para. " * 5
    pieces = split_text(text, 120)
    assert all(len(p) <= 120 for p in pieces)
    assert " ".join(pieces).split() == text.split()
    assert all(p.rstrip().endswith((".", "para.")) for p in pieces[:-1])


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    pieces = split_text("x" * 250, 100)
    assert "".join(pieces) == "x" * 250
    assert all(len(p) <= 100 for p in pieces)


def test_a_code_block_cut_in_two_is_closed_and_reopened() -> None:
    code = "\n".join(f"print({i})" for i in range(40))
    text = f"Intro\n\n```python\n{code}\n```\n\nOutro"
    pieces = split_text(text, 200)
    assert len(pieces) > 2
    for piece in pieces:
        assert piece.count("```") % 2 == 0, piece
        assert len(piece) <= 200
    assert pieces[1].startswith("```python")


def test_split_rejects_a_silly_limit() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        split_text("abc", 3)


def test_interval_schedule_adds_the_interval() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert (IntervalSchedule(90).next_after(now) - now).total_seconds() == 90


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 9 * * *", "2026-03-10 09:00", "2026-03-11 09:00"),
        ("*/15 * * * *", "2026-03-10 09:07", "2026-03-10 09:15"),
        ("30 8 * * 1-5", "2026-03-13 09:00", "2026-03-16 08:30"),  # Friday → Monday
        ("0 0 1 * *", "2026-12-15 00:00", "2027-01-01 00:00"),
        ("0 12 * * 0", "2026-03-10 00:00", "2026-03-15 12:00"),  # Sunday as 0
        ("0 12 * * 7", "2026-03-10 00:00", "2026-03-15 12:00"),  # and as 7
        ("0 0 13 * 5", "2026-03-01 00:00", "2026-03-06 00:00"),  # the 13th OR a Friday
    ],
)
def test_cron_finds_the_next_matching_minute(expression: str, after: str, expected: str) -> None:
    moment = datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert CronSchedule.parse(expression).next_after(moment) == datetime.fromisoformat(
        expected
    ).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "bad", ["* * * *", "61 * * * *", "a * * * *", "*/0 * * * *", "5-1 * * * *"]
)
def test_bad_cron_expressions_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        CronSchedule.parse(bad)
