"""The remind plugin: /remind, the remind and follow_up tools, /reminders, /timezone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from botkit import ConfigError, ConversationRef
from botkit.llm import OpenAIChatClient, StandInModel
from botkit.testing import FakeClock, FakeModel, TestBot, run_bot
from botkit_chat import plugin as chat
from botkit_remind import WhenError, resolve, split_when
from botkit_remind import plugin as remind
from tests.fakes.openai_server import FakeOpenAI, completion
from tests.plugins.conftest import StartBot

START = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)  # a Friday
BEFORE_DST = datetime(2026, 3, 28, 10, 0, tzinfo=UTC)  # Berlin springs forward on the 29th
BERLIN = ZoneInfo("Europe/Berlin")


async def pending(bot: TestBot) -> list[datetime]:
    from botkit import PluginRuntime

    jobs = await PluginRuntime(bot.bot.runtime, "remind").pending_jobs()
    return [job.due_at for job in jobs]


async def test_a_reminder_set_by_command_arrives_once_at_its_time(start_bot: StartBot) -> None:
    async with start_bot(plugins=[remind, chat], clock=FakeClock(START)) as bot:
        answer = await bot.ask("/remind in 10 minutes stretch")
        assert answer.startswith("OK, I'll remind you on Fri 4 Dec 2026 at 09:10 (UTC): stretch")
        assert await bot.advance(timedelta(minutes=9)) == []
        [sent] = await bot.advance(timedelta(minutes=1))
        assert (sent.conversation, sent.text) == (
            ConversationRef("test", "chat"),
            "Reminder: stretch",
        )
        assert await bot.advance(timedelta(days=1)) == []


async def test_tomorrow_at_9_is_read_in_the_users_zone_across_a_dst_change(
    start_bot: StartBot,
) -> None:
    async with start_bot(plugins=[remind, chat], clock=FakeClock(BEFORE_DST)) as bot:
        assert "Europe/Berlin" in await bot.ask("/timezone europe/berlin")
        answer = await bot.ask("/remind tomorrow at 9 call Bob")
        assert "on Sun 29 Mar 2026 at 09:00 (Europe/Berlin): call Bob" in answer
        # 09:00 in summer time, the day the clocks change: 07:00 UTC, not 08:00
        assert await pending(bot) == [datetime(2026, 3, 29, 7, 0, tzinfo=UTC)]
        assert await bot.advance(datetime(2026, 3, 29, 6, 59, tzinfo=UTC) - BEFORE_DST) == []
        [sent] = await bot.advance(timedelta(minutes=1))
        assert sent.text == "Reminder: call Bob"


async def test_the_default_zone_comes_from_the_settings_and_each_user_sets_their_own(
    start_bot: StartBot,
) -> None:
    settings = {"remind": {"timezone": "America/New_York", "default_time": "08:30"}}
    async with start_bot(plugins=[remind, chat], settings=settings, clock=FakeClock(START)) as bot:
        assert (await bot.ask("/timezone")).startswith(
            "Your time zone is America/New_York (it is 04:00 there)"
        )
        assert "on Mon 7 Dec 2026 at 08:30 (America/New_York)" in await bot.ask(
            "/remind monday standup"
        )
        assert "Asia/Tokyo" in await bot.ask("/timezone Asia/Tokyo", user="ken")
        assert "(Asia/Tokyo)" in await bot.ask("/remind tomorrow 9:00 tea", user="ken")
        reply = await bot.ask("/timezone Mars/Olympus")
        assert reply.startswith("I don't know the time zone 'Mars/Olympus'")
        assert "America/New_York" in await bot.ask("/timezone")  # unchanged


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("/remind tomorow 9 call Bob", "I can't tell when 'tomorow 9 call' is. Try: in 10"),
        ("/remind in 10 minutes", "say what to remind you of"),
        ("/remind", "I can't tell when"),
        ("/remind in 10 parsecs read", "I can't tell how long 'in 10 parsecs' is"),
        ("/remind 2026-02-30 10:00 pay rent", "'2026-02-30 10:00' is not a real date and time"),
        ("/remind 2020-01-01 10:00 pay rent", "has already passed"),
        ("/remind today call", "say what time 'today'"),
    ],
)
async def test_a_remind_command_that_cannot_be_read_gets_a_clear_error_and_sets_nothing(
    command: str, error: str
) -> None:
    async with run_bot(plugins=[remind, chat], clock=FakeClock(START)) as bot:
        answer = await bot.ask(command)
        assert error in answer
        assert await pending(bot) == []


async def test_reminders_are_listed_soonest_first_and_cancelled_by_number() -> None:
    async with run_bot(plugins=[remind, chat], clock=FakeClock(START)) as bot:
        assert await bot.ask("/reminders") == (
            "You have no reminders. Set one with /remind in 10 minutes stretch"
        )
        late = await bot.ask("/remind 2026-12-24 18:00 buy gifts")
        soon = await bot.ask("/remind in 2 hours call Bob")
        await bot.ask("/remind in 1 hour not mine", user="someone-else")
        late_id, soon_id = (int(a.split("(#")[1].split(";")[0]) for a in (late, soon))
        assert await bot.ask("/reminders") == (
            "Your reminders:\n"
            f"#{soon_id} on Fri 4 Dec 2026 at 11:00 (UTC): call Bob\n"
            f"#{late_id} on Thu 24 Dec 2026 at 18:00 (UTC): buy gifts\n"
            "Cancel one with /reminders cancel <number>."
        )
        assert await bot.ask(f"/reminders cancel {soon_id}") == f"Cancelled #{soon_id}: call Bob"
        assert await bot.ask(f"/reminders cancel {soon_id}") == (
            f"You have no reminder #{soon_id}. /reminders lists them."
        )
        assert "no reminder" in await bot.ask(f"/reminders cancel {late_id}", user="someone-else")
        assert (await bot.ask("/reminders cancel x")).startswith("Usage: /reminders")
        sent = await bot.advance(timedelta(hours=3))
        assert [s.text for s in sent] == ["Reminder: not mine"]


async def test_a_command_answered_again_sets_no_second_reminder() -> None:
    async with run_bot(plugins=[remind, chat], clock=FakeClock(START)) as bot:
        await bot.ask("/remind in 10 minutes stretch")
        from botkit import PluginRuntime

        await PluginRuntime(bot.bot.runtime, "remind").requeue(bot.last_message_id)
        await bot.idle()  # the same message handled once more (as after a crash)
        assert len(await pending(bot)) == 1
        assert [s.text for s in await bot.advance(timedelta(minutes=10))] == ["Reminder: stretch"]


async def test_the_model_sets_a_reminder_with_the_remind_tool_and_confirms_the_time(
    start_bot: StartBot, fake_openai: FakeOpenAI, openai_model: OpenAIChatClient
) -> None:
    fake_openai.script(
        completion(
            None,
            tool_calls=[("call_1", "remind", '{"when": "tomorrow at 9", "text": "call Bob"}')],
        ),
        completion("Done: I'll remind you on Sunday 29 March at 09:00 to call Bob."),
    )
    async with start_bot(
        plugins=[remind, chat],
        model=openai_model,
        clock=FakeClock(BEFORE_DST),
        config={"bot": {"stream": False}},
    ) as bot:
        await bot.ask("/timezone Europe/Berlin")
        answer = await bot.ask("remind me tomorrow at 9 to call Bob")
        assert answer == "Done: I'll remind you on Sunday 29 March at 09:00 to call Bob."
        first, second = fake_openai.requests
        offered = {t["function"]["name"] for t in first.json["tools"]}
        assert {"remind", "follow_up"} <= offered
        result = second.messages[-1]
        assert result["role"] == "tool"
        assert result["tool_call_id"] == "call_1"
        assert "on Sun 29 Mar 2026 at 09:00 (Europe/Berlin): call Bob" in result["content"]
        [sent] = await bot.advance(timedelta(days=1))
        assert sent.text == "Reminder: call Bob"


async def test_a_follow_up_arrives_as_the_bots_message_in_its_conversation() -> None:
    model = FakeModel()
    model.call_tool(
        "follow_up", {"when": "friday", "message": "Checking back: did the release go out?"}
    )
    model.reply("I'll check back on Friday.")
    async with run_bot(
        plugins=[remind, chat], model=model, channels=["slack", "email"], clock=FakeClock(START)
    ) as bot:
        answer = await bot.ask("We release next week", channel="slack", chat="C1", thread="t9")
        assert answer == "I'll check back on Friday."
        tool_result = model.requests[1].messages[-1]["content"]
        assert "I'll check back here on Fri 11 Dec 2026 at 09:00 (UTC)" in tool_result
        [sent] = await bot.advance(timedelta(days=7))
        assert sent.conversation == ConversationRef("slack", "C1", "t9")
        assert sent.text == "Checking back: did the release go out?"
        assert bot.channels["email"].sent == []
        [outbound] = [
            m
            for m in await bot.store.history.turns(
                await bot.store.history.conversation_id(sent.conversation),
                before_id=None,
                limit=10,
            )
            if m.text == sent.text
        ]
        assert outbound.status == "delivered"


async def test_a_reminder_survives_a_restart_and_is_sent_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    async with run_bot(plugins=[remind, chat], database_url=url, clock=FakeClock(START)) as bot:
        await bot.ask("/remind in 1 hour water the plants")
    later = START + timedelta(hours=5)  # the bot was down when it fell due
    async with run_bot(plugins=[remind, chat], database_url=url, clock=FakeClock(later)) as bot:
        assert [s.text for s in await bot.advance(0)] == ["Reminder: water the plants"]
    async with run_bot(plugins=[remind, chat], database_url=url, clock=FakeClock(later)) as bot:
        assert await bot.advance(timedelta(days=1)) == []


async def test_with_the_offline_stand_in_remind_me_is_read_without_tools() -> None:
    async with run_bot(
        plugins=[remind, chat], model=StandInModel(), clock=FakeClock(START)
    ) as bot:
        answer = await bot.ask("Remind me tomorrow at 9 to call Bob")
        assert answer.startswith("OK, I'll remind you on Sat 5 Dec 2026 at 09:00 (UTC): call Bob")
        answer = await bot.ask("remind me to water the plants in 2 hours")
        assert "at 11:00 (UTC): water the plants" in answer
        assert "I can't tell when" in await bot.ask("remind me about the thing")
        [first, second] = await bot.advance(timedelta(days=1))
        assert (first.text, second.text) == ("Reminder: water the plants", "Reminder: call Bob")


async def test_with_a_real_model_remind_me_goes_to_the_model() -> None:
    async with run_bot(plugins=[remind, chat], clock=FakeClock(START)) as bot:
        assert await bot.ask("remind me tomorrow at 9 to call Bob") == (
            "echo: remind me tomorrow at 9 to call Bob"
        )
        assert await pending(bot) == []


# -- reading times -------------------------------------------------------------------------

NOW = datetime(2026, 3, 28, 10, 0, tzinfo=UTC)  # Saturday 11:00 in Berlin, DST tomorrow


@pytest.mark.parametrize(
    ("said", "local"),
    [
        ("tomorrow at 9", "2026-03-29 09:00+02:00"),
        ("tomorrow 9:00", "2026-03-29 09:00+02:00"),
        ("9pm tomorrow", "2026-03-29 21:00+02:00"),
        ("in 10 minutes", "2026-03-28 11:10+01:00"),
        ("in an hour", "2026-03-28 12:00+01:00"),
        ("in half an hour", "2026-03-28 11:30+01:00"),
        ("in 1 day", "2026-03-29 11:00+02:00"),  # the wall clock's time, 23 real hours
        ("in 24 hours", "2026-03-29 12:00+02:00"),  # real hours
        ("in 2 weeks", "2026-04-11 11:00+02:00"),
        ("friday 17:30", "2026-04-03 17:30+02:00"),
        ("next monday", "2026-03-30 09:00+02:00"),
        ("saturday", "2026-04-04 09:00+02:00"),  # the next one after today
        ("at 17:00", "2026-03-28 17:00+01:00"),
        ("10am", "2026-03-29 10:00+02:00"),  # passed today: tomorrow
        ("noon", "2026-03-28 12:00+01:00"),
        ("tonight", "2026-03-28 20:00+01:00"),
        ("2026-12-24 18:00", "2026-12-24 18:00+01:00"),
        ("2026-12-24T18:00", "2026-12-24 18:00+01:00"),
        ("2026-12-24", "2026-12-24 09:00+01:00"),
        ("2026-12-24T18:00Z", "2026-12-24 18:00+00:00"),  # an offset wins over the zone
        ("2026-03-29 02:30", "2026-03-29 03:00+02:00"),  # skipped by the clock: after the gap
        ("2026-10-25 02:30", "2026-10-25 02:30+02:00"),  # shown twice: the first
    ],
)
def test_times_are_read_in_the_zone(said: str, local: str) -> None:
    found = resolve(said, NOW, BERLIN, time(9, 0))
    expected = datetime.fromisoformat(local)
    # as instants: a time in a repeated hour never equals one of another zone (PEP 495)
    assert found.astimezone(UTC) == expected.astimezone(UTC)
    assert found.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    ("text", "when", "what"),
    [
        ("tomorrow 9:00 call Bob", "tomorrow 9:00", "call Bob"),
        ("me in 10 minutes to stretch", "in 10 minutes", "stretch"),
        ("call Bob tomorrow at 9", "tomorrow at 9", "call Bob"),
        ("2026-12-24 18:00 buy gifts", "2026-12-24 18:00", "buy gifts"),
    ],
)
def test_a_command_splits_into_when_and_what(text: str, when: str, what: str) -> None:
    assert split_when(text) == (when, what)


@pytest.mark.parametrize("said", ["tomorow 9", "25:00", "13pm", "in 3 fortnights", "someday"])
def test_what_is_not_a_time_is_a_clear_error(said: str) -> None:
    with pytest.raises(WhenError, match="I can't tell"):
        resolve(said, NOW, BERLIN, time(9, 0))


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"timezone": "Mars/Olympus"}, "plugins.remind.timezone"),
        ({"default_time": "9"}, "plugins.remind.default_time"),
        ({"message": "Reminder: {what}"}, "plugins.remind.message"),
        ({"max_per_user": 0}, "plugins.remind.max_per_user"),
    ],
)
async def test_bad_settings_are_config_errors_naming_the_key(
    table: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        async with run_bot(plugins=[remind], settings={"remind": table}):
            pass


async def test_one_person_can_keep_only_max_per_user_reminders() -> None:
    settings = {"remind": {"max_per_user": 2}}
    async with run_bot(plugins=[remind, chat], settings=settings, clock=FakeClock(START)) as bot:
        await bot.ask("/remind in 1 hour a")
        await bot.ask("/remind in 2 hours b")
        answer = await bot.ask("/remind in 3 hours c")
        assert answer.startswith("You have 2 reminders waiting")
        assert "OK" in await bot.ask("/remind in 3 hours c", user="other")
        assert len(await pending(bot)) == 3
