"""The tutor's daily practice: one question on a weak point per learner, once cluster-wide."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

from botkit import ConversationRef, PluginRuntime
from botkit.store import Database, Store
from botkit.testing import FakeModel, InMemoryChannel, TestBot
from botkit_chat import plugin as chat
from botkit_tutor import Course, Learner, Lesson, Question, TutorSettings, WeakPoint
from botkit_tutor import plugin as tutor
from botkit_tutor.practice import LAST_KEY, send_practice
from botkit_tutor.progress import learner_key, save
from tests.plugins.conftest import StartBot

BERLIN_9AM = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # 09:00 in Berlin (CET)
DAILY = TutorSettings(practice_cron="0 9 * * *", timezone="Europe/Berlin")


def learning(user: str, *weak: str, chat: str = "chat", **extra: object) -> Learner:
    course = Course(1, "Python", [Lesson("Variables", "name a value"), Lesson("Loops", "repeat")])
    course.current = 1
    learner = Learner(
        learner_key("test", user),
        user,
        ConversationRef("test", chat),
        courses=[course],
        active=1,
        weak_points=[WeakPoint(text, "Python") for text in weak],
    )
    for name, value in extra.items():
        setattr(learner, name, value)
    return learner


async def put(store: Store, *learners: Learner) -> None:
    for learner in learners:
        await save(store.state("plugin:tutor"), learner)


def practice_model() -> FakeModel:
    return FakeModel().respond_with(
        lambda request: json.dumps({"question": "What does x = 1 do?"}), purpose="tutor_practice"
    )


async def test_at_practice_time_each_active_learner_gets_one_question_on_a_weak_point(
    start_bot: StartBot,
) -> None:
    model = practice_model()
    async with start_bot(plugins=[tutor, chat], model=model) as bot:
        await put(
            bot.store,
            learning("ann", "confuses names and values", chat="ann"),
            learning("bob", "off by one", chat="bob", paused=True),
            learning("cid", chat="cid"),  # nothing weak
            learning("dan", "loops", chat="dan", question=Question("lesson", "Q?", course=1)),
        )
        job = PluginRuntime(bot.bot.runtime, "tutor")
        assert await send_practice(job, DAILY, now=BERLIN_9AM - timedelta(hours=1)) == 0
        assert await send_practice(job, DAILY, now=BERLIN_9AM - timedelta(minutes=1)) == 0
        assert await send_practice(job, DAILY, now=BERLIN_9AM + timedelta(minutes=1)) == 1
        assert await send_practice(job, DAILY, now=BERLIN_9AM + timedelta(minutes=2)) == 0
        await bot.idle()
        [sent] = bot.sent
        assert sent.conversation == ConversationRef("test", "ann")
        assert sent.text == (
            "Daily practice on Python: What does x = 1 do?\n(Answer here; /stop to pause.)"
        )
        # the answer is graded; a right one takes the weak point off the list
        model.reply_json(
            {"correct": True, "score": 1, "feedback": "Yes.", "weak_points": []},
            purpose="tutor_grade",
        )
        reply = await bot.ask("it names the value 1", user="ann", chat="ann")
        data = await bot.store.state("plugin:tutor").get(learner_key("test", "ann"))
    [request] = model.requests_for("tutor_practice")
    assert "Weakness: confuses names and values" in request.messages[-1]["content"]
    assert reply == (
        "Right (score 100%). Yes.\n'confuses names and values' is off your list of weak "
        "points.\nSend /learn to go on with Python."
    )
    ann = Learner.from_json(data)
    assert ann.weak_points == []
    assert ann.question is None


async def test_a_wrong_practice_answer_keeps_the_weak_point(start_bot: StartBot) -> None:
    model = practice_model()
    async with start_bot(plugins=[tutor, chat], model=model) as bot:
        await put(bot.store, learning("user", "off by one"))
        job = PluginRuntime(bot.bot.runtime, "tutor")
        await job.state.set(LAST_KEY, (BERLIN_9AM - timedelta(hours=1)).isoformat())
        assert await send_practice(job, DAILY, now=BERLIN_9AM) == 1
        await bot.idle()
        model.reply_json(
            {"correct": False, "score": 0.1, "feedback": "No.", "weak_points": []},
            purpose="tutor_grade",
        )
        assert (await bot.ask("dunno")).startswith("Not quite (score 10%). No.")
        data = await bot.store.state("plugin:tutor").get(learner_key("test", "user"))
    [weak] = Learner.from_json(data).weak_points
    assert (weak.text, weak.count) == ("off by one", 2)
    assert weak.practised is not None


async def test_a_practice_time_missed_by_more_than_an_hour_is_skipped(start_bot: StartBot) -> None:
    model = practice_model()
    async with start_bot(plugins=[tutor, chat], model=model) as bot:
        await put(bot.store, learning("user", "off by one"))
        job = PluginRuntime(bot.bot.runtime, "tutor")
        await job.state.set(LAST_KEY, (BERLIN_9AM - timedelta(hours=1)).isoformat())
        assert await send_practice(job, DAILY, now=BERLIN_9AM + timedelta(hours=3)) == 0
        # and the next day's comes on time
        next_day = BERLIN_9AM + timedelta(days=1, minutes=1)
        assert await send_practice(job, DAILY, now=next_day) == 1
    assert len(model.requests_for("tutor_practice")) == 1


async def test_without_practice_cron_the_job_sends_nothing(start_bot: StartBot) -> None:
    model = practice_model()
    async with start_bot(plugins=[tutor, chat], model=model) as bot:
        await put(bot.store, learning("user", "off by one"))
        await bot.run_job("tutor")
        await bot.run_job("tutor")
        assert await bot.store.state("plugin:tutor").get(LAST_KEY) is None
    assert bot.sent == []


async def test_daily_practice_fires_once_with_two_bots_on_one_database(
    database_url: str, start_bot: StartBot
) -> None:
    now = datetime.now(UTC)
    database = Database(database_url)
    await database.upgrade()
    store = Store(database)
    try:
        await put(store, learning("user", "off by one"))
        await store.state("plugin:tutor").set(LAST_KEY, (now - timedelta(minutes=2)).isoformat())
        # the job last ran a minute ago (its every-minute tick is due now), as if another
        # process had run it: the scheduler that takes the lease fires the next tick at once
        assert await store.leases.record_run("tutor.practice", now - timedelta(seconds=61), "old")
    finally:
        await database.close()
    settings = {"tutor": {"practice_cron": "* * * * *"}}
    config = {"bot": {"singleton_lease": 5.0}}
    models = [practice_model(), practice_model()]
    channels = [InMemoryChannel("test"), InMemoryChannel("test")]
    bots: list[TestBot] = []
    async with (
        start_bot(
            plugins=[tutor],
            model=models[0],
            settings=settings,
            config=config,
            channels=[channels[0]],
        ) as first,
        start_bot(
            plugins=[tutor],
            model=models[1],
            settings=settings,
            config=config,
            channels=[channels[1]],
        ) as second,
    ):
        bots += [first, second]
        deadline = time.monotonic() + 15
        while not any(c.sent for c in channels):
            assert time.monotonic() < deadline, "no practice was sent"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # time for a second one, were there to be one
    sent = [s.text for c in channels for s in c.sent]
    assert sent == [
        "Daily practice on Python: What does x = 1 do?\n(Answer here; /stop to pause.)"
    ]
    assert sum(len(m.requests_for("tutor_practice")) for m in models) == 1
