"""Cron schedules: crontab's syntax through cronsim, and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from botkit import Plugin, PluginError
from botkit.context import JobContext
from botkit.plugin import ScheduledJob
from botkit.schedule import CronSchedule
from botkit.scheduler import _next_due

BERLIN = ZoneInfo("Europe/Berlin")
SANTIAGO = ZoneInfo("America/Santiago")  # its clocks spring forward at midnight


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def runs(schedule: CronSchedule, after: datetime, count: int) -> list[str]:
    """The next ``count`` run times, as ISO strings with their UTC offsets."""
    times = []
    for _ in range(count):
        after = schedule.next_after(after)
        times.append(after.isoformat())
    return times


@pytest.mark.parametrize(
    ("alias", "after", "expected"),
    [
        ("@hourly", "2026-03-10 09:07", "2026-03-10 10:00"),
        ("@daily", "2026-03-10 09:07", "2026-03-11 00:00"),
        ("@midnight", "2026-03-10 09:07", "2026-03-11 00:00"),
        ("@weekly", "2026-03-10 09:07", "2026-03-15 00:00"),  # Sunday
        ("@monthly", "2026-03-10 09:07", "2026-04-01 00:00"),
        ("@yearly", "2026-03-10 09:07", "2027-01-01 00:00"),
        ("@annually", "2026-03-10 09:07", "2027-01-01 00:00"),
        ("@Daily", "2026-03-10 09:07", "2026-03-11 00:00"),
    ],
)
def test_crontab_aliases_stand_for_their_five_fields(
    alias: str, after: str, expected: str
) -> None:
    assert CronSchedule.parse(alias).next_after(utc(after)) == utc(expected)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("30 8 * * mon-fri", "2026-03-13 09:00", "2026-03-16 08:30"),  # Friday → Monday
        ("30 8 * * MON-FRI", "2026-03-14 09:00", "2026-03-16 08:30"),
        ("0 9 * * sat,sun", "2026-03-10 00:00", "2026-03-14 09:00"),
        ("0 0 1 JAN *", "2026-03-10 00:00", "2027-01-01 00:00"),
        ("0 0 1 jun-aug *", "2026-03-10 00:00", "2026-06-01 00:00"),
        ("0 0 L * *", "2026-02-10 00:00", "2026-02-28 00:00"),  # the month's last day
        ("0 0 L * *", "2028-02-10 00:00", "2028-02-29 00:00"),  # a leap year's
        ("0 0 LW * *", "2026-05-10 00:00", "2026-05-29 00:00"),  # 31st is a Sunday
        ("0 18 * * 5L", "2026-03-01 00:00", "2026-03-27 18:00"),  # its last Friday
        ("0 9 * * 1#1", "2026-03-10 00:00", "2026-04-06 09:00"),  # its first Monday
        ("0 9 * * MON#2", "2026-03-10 00:00", "2026-04-13 09:00"),  # its second
    ],
)
def test_names_last_day_and_nth_weekday_are_understood(
    expression: str, after: str, expected: str
) -> None:
    assert CronSchedule.parse(expression).next_after(utc(after)) == utc(expected)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("0 9 * * *  *", "must have 5 fields"),  # cronsim would read a seconds field
        ("@reboot", "not an alias botkit knows"),
        ("@often", "use one of @yearly"),
        ("0 9 * * 1#6", "weekday field '1#6' is malformed"),
        ("0 9 * FOO *", "month field 'FOO' is malformed"),
        ("0 9 32 * *", "day field '32' is out of range 1-31"),
        ("0 9 * * 8", "weekday field '8' is out of range 0-7"),
        ("0 9 30 feb *", "never matches"),
    ],
)
def test_what_cron_cannot_read_is_refused_naming_the_field(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CronSchedule.parse(bad)


def test_a_schedule_reads_its_times_in_its_own_zone() -> None:
    schedule = CronSchedule.parse("0 9 * * mon-fri", BERLIN)
    due = schedule.next_after(utc("2026-01-02 09:00"))  # Friday, 10:00 in Berlin
    assert due.isoformat() == "2026-01-05T09:00:00+01:00"
    summer = schedule.next_after(utc("2026-07-01 08:00"))
    assert summer.astimezone(UTC) == utc("2026-07-02 07:00")  # 09:00 CEST


def test_without_a_zone_the_moments_own_zone_is_used() -> None:
    schedule = CronSchedule.parse("0 9 * * *")
    assert schedule.next_after(datetime(2026, 1, 1, 10, tzinfo=BERLIN)).isoformat() == (
        "2026-01-02T09:00:00+01:00"
    )
    assert schedule.next_after(datetime(2026, 1, 1, 10)) == datetime(2026, 1, 2, 9)


def test_a_wall_time_the_spring_change_skips_runs_once_at_the_first_valid_instant() -> None:
    # 2025-03-30 in Berlin: 02:00 CET is followed by 03:00 CEST
    schedule = CronSchedule.parse("30 2 * * *", BERLIN)
    assert runs(schedule, utc("2025-03-29 12:00"), 3) == [
        "2025-03-30T03:00:00+02:00",  # not 02:30+01:00, a time no clock there shows
        "2025-03-31T02:30:00+02:00",
        "2025-04-01T02:30:00+02:00",
    ]


def test_every_wall_time_inside_the_gap_runs_once_together() -> None:
    schedule = CronSchedule.parse("*/15 2 * * *", BERLIN)
    assert runs(schedule, utc("2025-03-29 12:00"), 2) == [
        "2025-03-30T03:00:00+02:00",
        "2025-03-31T02:00:00+02:00",
    ]


def test_a_job_due_at_the_end_of_the_gap_runs_once_there() -> None:
    schedule = CronSchedule.parse("0 2,3 * * *", BERLIN)  # 02:00 is skipped, 03:00 is not
    assert runs(schedule, utc("2025-03-29 12:00"), 2) == [
        "2025-03-30T03:00:00+02:00",
        "2025-03-31T02:00:00+02:00",
    ]


def test_a_wall_time_the_autumn_change_repeats_runs_once() -> None:
    # 2025-10-26 in Berlin: 03:00 CEST goes back to 02:00 CET, 02:xx comes twice
    schedule = CronSchedule.parse("30 2 * * *", BERLIN)
    assert runs(schedule, utc("2025-10-25 12:00"), 2) == [
        "2025-10-26T02:30:00+02:00",  # the first time; not again at 02:30+01:00
        "2025-10-27T02:30:00+01:00",
    ]
    every_quarter = CronSchedule.parse("*/15 2 * * *", BERLIN)
    assert runs(every_quarter, utc("2025-10-25 12:00"), 5) == [
        "2025-10-26T02:00:00+02:00",
        "2025-10-26T02:15:00+02:00",
        "2025-10-26T02:30:00+02:00",
        "2025-10-26T02:45:00+02:00",
        "2025-10-27T02:00:00+01:00",
    ]


def test_from_inside_the_repeated_hour_the_next_run_is_still_later() -> None:
    schedule = CronSchedule.parse("30 2 * * *", BERLIN)
    inside = utc("2025-10-26 01:10")  # 02:10 CET, after 02:30 CEST has been
    due = schedule.next_after(inside)
    assert due > inside
    assert due.isoformat() == "2025-10-27T02:30:00+01:00"


def test_an_hourly_schedule_runs_every_real_hour_across_both_changes() -> None:
    hourly = CronSchedule.parse("30 * * * *", BERLIN)
    assert runs(hourly, utc("2025-03-30 00:00"), 2) == [
        "2025-03-30T01:30:00+01:00",
        "2025-03-30T03:30:00+02:00",  # an hour later: 02:30 does not exist
    ]
    assert runs(hourly, utc("2025-10-26 00:00"), 3) == [
        "2025-10-26T02:30:00+02:00",
        "2025-10-26T02:30:00+01:00",  # an hour later, the clock showing 02:30 again
        "2025-10-26T03:30:00+01:00",
    ]


def test_a_midnight_the_clock_skips_runs_at_the_first_valid_instant() -> None:
    # 2025-09-07 in Santiago: 00:00 -04 is followed by 01:00 -03
    for expression in ("0 0 * * *", "0 * * * *"):
        schedule = CronSchedule.parse(expression, SANTIAGO)
        due = schedule.next_after(utc("2025-09-07 03:30"))  # 23:30 on the 6th
        assert due.isoformat() == "2025-09-07T01:00:00-03:00", expression


def test_the_scheduler_fires_a_zoned_job_once_at_the_end_of_the_gap() -> None:
    async def func(job: JobContext) -> None:
        return None

    job = ScheduledJob("digest", "tick", CronSchedule.parse("30 2 * * *", BERLIN), func)
    now = utc("2025-03-30 00:50")  # 01:50 CET
    due = _next_due(job, None, now, timedelta(seconds=60))
    assert due == utc("2025-03-30 01:00")
    after = _next_due(job, due, due + timedelta(seconds=1), timedelta(seconds=60))
    assert after == utc("2025-03-31 00:30")  # the next day, not 02:30 again


def test_on_schedule_reads_cron_in_the_time_zone_given() -> None:
    plugin = Plugin("clock")

    @plugin.on_schedule(cron="@daily", timezone="Europe/Berlin")
    async def tick(job: JobContext) -> None:
        return None

    [job] = plugin.jobs
    assert job.schedule.next_after(utc("2026-01-01 12:00")) == utc("2026-01-01 23:00")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"cron": "0 9 * * *", "timezone": "Europe/Berln"}, "'Europe/Berln' is not a known"),
        ({"every": 60, "timezone": "Europe/Berlin"}, "applies to cron only"),
        ({"cron": "0 9 * * mon-fry"}, "plugin 'clock': cron weekday field 'mon-fry'"),
    ],
)
def test_on_schedule_refuses_a_bad_zone_or_expression_at_once(
    arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(PluginError, match=message):
        Plugin("clock").on_schedule(**arguments)  # type: ignore[arg-type]
