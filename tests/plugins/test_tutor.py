"""The tutor: courses planned and taught step by step, answers graded, progress kept."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from botkit import ChatRequest, ConfigError, InvalidResponseError, PluginRuntime
from botkit._settings import parse_settings
from botkit.discovery import load_plugin
from botkit.llm import OpenAIChatClient, StandInModel
from botkit.testing import FakeModel, InMemoryChannel, TestBot
from botkit_autoreply import plugin as autoreply
from botkit_chat import plugin as chat
from botkit_tutor import TutorSettings
from botkit_tutor import plugin as tutor
from botkit_tutor.planning import PLAN_SCHEMA
from botkit_tutor.progress import Learner, learner_key
from botkit_tutor.report import STAND_IN
from tests.fakes.example_config import example_table
from tests.fakes.openai_server import FakeOpenAI, completion
from tests.plugins.conftest import StartBot

NO_STREAM = {"bot": {"stream": False}}
PLAN = {
    "lessons": [
        {"title": "Variables", "goal": "name a value"},
        {"title": "Loops", "goal": "repeat a step"},
    ]
}


def step(n: int) -> dict[str, str]:
    return {"explanation": f"Explanation {n}.", "question": f"Question {n}?"}


def graded(correct: bool, score: float, *weak: str) -> dict[str, Any]:
    feedback = "Well done." if correct else "That mixes up names and values."
    return {"correct": correct, "score": score, "feedback": feedback, "weak_points": list(weak)}


async def learner(bot: TestBot, user: str = "user") -> Learner:
    data = await bot.store.state("plugin:tutor").get(learner_key("test", user))
    assert isinstance(data, dict)
    return Learner.from_json(data)


# -- a course, step by step ------------------------------------------------------------------


async def test_a_course_is_planned_taught_graded_and_finished(start_bot: StartBot) -> None:
    model = FakeModel()
    model.reply_json(PLAN, purpose="tutor_plan")
    model.reply_json(step(1), purpose="tutor_lesson")
    model.reply_json(graded(True, 0.9), purpose="tutor_grade")
    model.reply_json(step(2), purpose="tutor_lesson")
    model.reply_json(graded(True, 0.7), purpose="tutor_grade")
    async with start_bot(plugins=[tutor, chat], model=model) as bot:
        first = await bot.ask("/learn Python basics")
        assert "Python basics: a course in 2 lessons." in first
        assert "1. Variables\n2. Loops" in first
        assert "Lesson 1 of 2: Variables\nExplanation 1.\n\nQuestion: Question 1?" in first
        second = await bot.ask("x = 1 names the value 1")
        assert second.startswith("Right (score 90%). Well done.")
        assert "Lesson 2 of 2: Loops" in second
        last = await bot.ask("for i in range(3): print(i)")
        assert last.startswith("Right (score 70%).")
        assert "Course complete: Python basics, 2 lessons, average score 80%." in last
        # the question answered, the course over: chat answers again
        assert await bot.ask("thanks!") == "echo: thanks!"
        record = await learner(bot)
    [course] = record.courses
    assert course.finished
    assert [lesson.score for lesson in course.lessons] == [0.9, 0.7]
    assert record.question is None
    plan_request = model.requests_for("tutor_plan")[0]
    assert plan_request.messages[-1]["content"] == "Python basics"
    grade_request = model.requests_for("tutor_grade")[0]
    assert "Question: Question 1?" in grade_request.messages[-1]["content"]
    assert "x = 1 names the value 1" in grade_request.messages[-1]["content"]
    assert grade_request.temperature == 0
    assert model.requests_for("chat")[-1].messages[-1]["content"] == "thanks!"


async def test_a_wrong_answer_is_taught_again_then_the_course_moves_on(
    start_bot: StartBot,
) -> None:
    model = FakeModel()
    model.reply_json(PLAN, purpose="tutor_plan")
    model.reply_json(step(1), purpose="tutor_lesson")
    model.reply_json(graded(False, 0.2, "confuses names and values"), purpose="tutor_grade")
    model.reply_json(step(11), purpose="tutor_lesson")  # taught again
    model.reply_json(graded(False, 0.3, "confuses names and values"), purpose="tutor_grade")
    model.reply_json(step(2), purpose="tutor_lesson")
    async with start_bot(plugins=[tutor, chat], model=model) as bot:
        await bot.ask("/learn Python")
        again = await bot.ask("1 = x")
        assert again.startswith("Not quite (score 20%). That mixes up names and values.")
        assert "Let's look at it another way." in again
        assert "Lesson 1 of 2: Variables\nExplanation 11." in again
        moved = await bot.ask("x is 1?")
        assert "We'll move on; it stays on your list of weak points to practise." in moved
        assert "Lesson 2 of 2: Loops" in moved
        record = await learner(bot)
    reteach = model.requests_for("tutor_lesson")[1].messages[-1]["content"]
    assert "They answered the question 'Question 1?' wrongly: That mixes up" in reteach
    [course] = record.courses
    assert course.current == 1
    assert course.lessons[0].done
    assert course.lessons[0].attempts == 2
    assert course.lessons[0].score == 0.3
    [weak] = record.weak_points
    assert (weak.text, weak.topic, weak.count) == ("confuses names and values", "Python", 2)


async def test_a_wrong_answer_without_named_weak_points_records_the_lesson(
    start_bot: StartBot,
) -> None:
    model = FakeModel()
    model.reply_json(PLAN, purpose="tutor_plan")
    model.reply_json(step(1), purpose="tutor_lesson")
    model.reply_json(graded(False, 0.0), purpose="tutor_grade")
    model.reply_json(step(2), purpose="tutor_lesson")
    settings = {"tutor": {"max_reteach": 0}}
    async with start_bot(plugins=[tutor, chat], model=model, settings=settings) as bot:
        await bot.ask("/learn Python")
        assert "Lesson 2 of 2" in await bot.ask("no idea")
        record = await learner(bot)
    assert [w.text for w in record.weak_points] == ["Variables"]


# -- routing ---------------------------------------------------------------------------------


async def test_only_the_learner_in_the_lessons_conversation_is_graded_and_stop_leaves(
    start_bot: StartBot,
) -> None:
    model = FakeModel()
    model.reply_json(PLAN, purpose="tutor_plan")
    model.reply_json(step(1), purpose="tutor_lesson")
    # listed after chat, the tutor still takes answers before chat's catch-all
    async with start_bot(plugins=[chat, tutor], model=model) as bot:
        await bot.ask("/learn Python", chat="group")
        # someone else in the same chat, and the learner in another chat: the chat skill
        # (the chat skill names the speakers of a conversation with several)
        assert await bot.ask("hi", chat="group", user="other") == "echo: other: hi"
        assert await bot.ask("elsewhere", chat="dm") == "echo: elsewhere"
        assert await bot.ask("/stop", chat="group") == (
            "Paused Python at lesson 1 of 2. Send /learn to pick it up again."
        )
        assert await bot.ask("a question", chat="group") == "echo: user: a question"
        assert await bot.ask("/stop", chat="group") == (
            "You are not in a lesson. /learn <topic> starts one."
        )
        # /learn brings the waiting question back, in the conversation it is sent from
        resumed = await bot.ask("/learn", chat="dm")
        assert resumed.startswith("Picking up where you stopped.\n\nLesson 1 of 2: Variables")
        model.reply_json(graded(True, 1), purpose="tutor_grade")
        model.reply_json(step(2), purpose="tutor_lesson")
        assert (await bot.ask("x = 1", chat="dm")).startswith("Right (score 100%).")
        assert await bot.ask("/learn stop", chat="dm") == (
            "Paused Python at lesson 2 of 2. Send /learn to pick it up again."
        )
    assert len(model.requests_for("tutor_grade")) == 1
    assert len(model.requests_for("chat")) == 3


async def test_listed_before_autoreply_the_tutor_takes_the_answer_no_rule_does(
    start_bot: StartBot,
) -> None:
    model = FakeModel()
    model.reply_json(PLAN, purpose="tutor_plan")
    model.reply_json(step(1), purpose="tutor_lesson")
    model.reply_json(graded(True, 1), purpose="tutor_grade")
    model.reply_json(step(2), purpose="tutor_lesson")
    rules = {"autoreply": {"rules": [{"name": "all", "reply": "We are away."}]}}
    async with start_bot(plugins=[tutor, autoreply, chat], model=model, settings=rules) as bot:
        await bot.ask("/learn Python")
        assert (await bot.ask("x = 1")).startswith("Right (score 100%).")
        await bot.ask("/stop")
        assert await bot.ask("x = 2") == "We are away."


async def test_a_message_answered_again_gets_the_same_reply_and_the_course_does_not_advance(
    start_bot: StartBot,
) -> None:
    model = FakeModel()
    model.reply_json({"lessons": PLAN["lessons"][:1]}, purpose="tutor_plan")
    model.reply_json(step(1), purpose="tutor_lesson")
    model.reply_json(graded(True, 1), purpose="tutor_grade")
    async with start_bot(plugins=[tutor, chat], model=model) as bot:
        await bot.ask("/learn Python")
        first = await bot.ask("x = 1")  # the last lesson: no question waits any more
        assert "Course complete" in first
        answered = bot.last_message_id
        # as after a crash between the tutor's write and the reply's commit
        await PluginRuntime(bot.bot.runtime, "tutor").requeue(answered)
        await bot.idle()
        record = await learner(bot)
    assert [s.text for s in bot.sent][-2:] == [first, first]
    assert len(model.requests_for("tutor_grade")) == 1
    assert model.requests_for("chat") == []
    assert record.courses[0].current == 1
    assert record.courses[0].lessons[0].attempts == 1


# -- progress, resuming ----------------------------------------------------------------------


async def test_progress_shows_courses_lessons_scores_and_weak_points(
    start_bot: StartBot,
) -> None:
    model = FakeModel()
    async with start_bot(plugins=[tutor, chat], model=model) as bot:
        assert await bot.ask("/progress") == "No courses yet. Start one with /learn <topic>."
        model.reply_json(PLAN, purpose="tutor_plan")
        model.reply_json(step(1), purpose="tutor_lesson")
        model.reply_json(graded(True, 0.8, "forgets quotes"), purpose="tutor_grade")
        model.reply_json(step(2), purpose="tutor_lesson")
        await bot.ask("/learn Python")
        await bot.ask("x = 'a'")
        model.reply_json(
            {"lessons": [{"title": "Chords", "goal": "play C"}]}, purpose="tutor_plan"
        )
        model.reply_json(step(1), purpose="tutor_lesson")
        await bot.ask("/learn Guitar")
        report = await bot.ask("/progress")
    assert report == (
        "Your courses:\n"
        "- Python: 1 of 2 lessons done, average score 80%; next: lesson 2, Loops\n"
        "- Guitar: 0 of 1 lessons done; next: lesson 1, Chords\n"
        "Weak points: forgets quotes (Python).\n"
        "A question is waiting for your answer here."
    )


async def test_a_course_resumes_after_a_restart_on_the_same_database(
    start_bot: StartBot,
) -> None:
    channel = InMemoryChannel("test")  # one channel across both runs: its ids go on
    model = FakeModel()
    model.reply_json(PLAN, purpose="tutor_plan")
    model.reply_json(step(1), purpose="tutor_lesson")
    async with start_bot(plugins=[tutor, chat], model=model, channels=[channel]) as bot:
        await bot.ask("/learn Python")
    restarted = FakeModel()
    async with start_bot(plugins=[tutor, chat], model=restarted, channels=[channel]) as bot:
        resumed = await bot.ask("/learn")
        assert "Lesson 1 of 2: Variables\nExplanation 1.\n\nQuestion: Question 1?" in resumed
        assert restarted.requests == []  # the waiting question comes from the store
        restarted.reply_json(graded(True, 1), purpose="tutor_grade")
        restarted.reply_json(step(2), purpose="tutor_lesson")
        assert "Lesson 2 of 2: Loops" in await bot.ask("x = 1")
        # /learn on the same topic resumes it rather than planning again
        assert "Lesson 2 of 2: Loops" in await bot.ask("/learn python")
    assert restarted.requests_for("tutor_plan") == []


async def test_learn_alone_with_nothing_to_resume_says_how_to_start(start_bot: StartBot) -> None:
    async with start_bot(plugins=[tutor, chat]) as bot:
        assert await bot.ask("/learn") == (
            "You have no course in progress. /learn <topic> starts one; /progress shows "
            "your courses."
        )
        assert "too long" in await bot.ask("/learn " + "x" * 201)


# -- the model's JSON ------------------------------------------------------------------------


async def test_the_plan_lesson_and_grade_are_asked_with_json_schemas(
    start_bot: StartBot, fake_openai: FakeOpenAI, openai_model: OpenAIChatClient
) -> None:
    fake_openai.script(
        completion(json.dumps(PLAN)),
        completion(json.dumps(step(1))),
        completion(json.dumps(graded(False, 0.4, "off by one"))),
        completion(json.dumps(step(11))),
    )
    async with start_bot(plugins=[tutor, chat], model=openai_model, config=NO_STREAM) as bot:
        await bot.ask("/learn Python")
        assert "Not quite (score 40%)" in await bot.ask("range(3) is 1, 2, 3")
        record = await learner(bot)
    plan, lesson, grade, _ = fake_openai.requests
    names = [r.json["response_format"]["json_schema"]["name"] for r in (plan, lesson, grade)]
    assert names == ["tutor_plan", "tutor_step", "tutor_grade"]
    schema = grade.json["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["correct", "score", "feedback", "weak_points"]
    assert [w.text for w in record.weak_points] == ["off by one"]


async def test_a_server_that_refuses_json_schema_gets_the_schema_in_the_prompt(
    start_bot: StartBot, fake_openai: FakeOpenAI, openai_model: OpenAIChatClient
) -> None:
    fake_openai.refused_formats = {"json_schema"}
    fake_openai.script(
        completion(json.dumps(PLAN)),
        completion("```json\n" + json.dumps(step(1)) + "\n```"),
        completion(json.dumps(graded(True, 1))),
        completion(json.dumps(step(2))),
    )
    async with start_bot(plugins=[tutor, chat], model=openai_model, config=NO_STREAM) as bot:
        assert "Question: Question 1?" in await bot.ask("/learn Python")
        assert "Lesson 2 of 2: Loops" in await bot.ask("x = 1")
    refused, *answered = fake_openai.requests
    assert refused.json["response_format"]["type"] == "json_schema"
    assert [r.json["response_format"]["type"] for r in answered] == ["json_object"] * 4
    assert '"weak_points"' in answered[2].messages[0]["content"]  # the grade's schema


async def test_a_garbage_plan_after_the_corrective_retry_gets_a_clear_answer(
    start_bot: StartBot, fake_openai: FakeOpenAI, openai_model: OpenAIChatClient
) -> None:
    fake_openai.script(
        completion("Sure! Here is a great course about Python."),
        completion(json.dumps({"lessons": []})),
    )
    async with start_bot(plugins=[tutor, chat], model=openai_model, config=NO_STREAM) as bot:
        answer = await bot.ask("/learn Python")
        assert await bot.store.state("plugin:tutor").get(learner_key("test", "user")) is None
    assert answer.startswith(
        "I couldn't plan a course on Python: the model's plan was not usable ("
    )
    assert answer.endswith("). Try again, or name the topic differently.")
    _, corrective = fake_openai.requests
    assert "That reply was not valid" in corrective.messages[-1]["content"]


async def test_a_plan_with_a_blank_title_or_an_ungradable_answer_is_said_plainly(
    start_bot: StartBot,
) -> None:
    model = FakeModel()
    model.reply_json({"lessons": [{"title": " ", "goal": "g"}]}, purpose="tutor_plan")
    async with start_bot(plugins=[tutor, chat], model=model) as bot:
        assert await bot.ask("/learn Python") == (
            "I couldn't plan a course on Python: the model's plan was not usable (the "
            "title of lesson 1 is empty). Try again, or name the topic differently."
        )
        model.reply_json(PLAN, purpose="tutor_plan")
        model.reply_json(step(1), purpose="tutor_lesson")
        await bot.ask("/learn Python")
        model.reply("a fine answer", purpose="tutor_grade")  # not JSON
        reply = await bot.ask("x = 1")
        assert reply.startswith("I couldn't grade that answer (")
        assert reply.endswith("). Send it again, or /stop to leave the lesson.")
        record = await learner(bot)
    assert record.question is not None  # still waiting for an answer that can be graded
    assert record.courses[0].lessons[0].attempts == 0


async def test_the_offline_stand_in_says_it_cannot_plan_a_course(start_bot: StartBot) -> None:
    # what the stand-in answers a plan request with: the simplest document the schema
    # describes (no lessons), which the schema itself refuses
    with pytest.raises(InvalidResponseError, match="stand-in model cannot produce"):
        await StandInModel().complete(
            ChatRequest([{"role": "user", "content": "JSON"}], response_format=PLAN_SCHEMA)
        )
    async with start_bot(plugins=[tutor, chat], model=StandInModel()) as bot:
        assert await bot.ask("/learn Python") == STAND_IN
        assert await bot.ask("/progress") == "No courses yet. Start one with /learn <topic>."
        usage = await bot.store.usage.report()
    assert usage == []  # no model call was made for it


# -- settings --------------------------------------------------------------------------------


async def test_a_bad_practice_cron_or_time_zone_stops_the_bot_at_start(
    start_bot: StartBot,
) -> None:
    with pytest.raises(ConfigError, match=r"plugins\.tutor\.practice_cron"):
        async with start_bot(plugins=[tutor], settings={"tutor": {"practice_cron": "9am"}}):
            pass
    with pytest.raises(ConfigError, match=r"plugins\.tutor\.timezone"):
        async with start_bot(plugins=[tutor], settings={"tutor": {"timezone": "Mars/Base"}}):
            pass


def test_the_documented_table_names_every_setting_and_parses() -> None:
    table = tomllib.loads(example_table("[plugins.tutor]"))["plugins"]["tutor"]
    assert set(table) == {f.name for f in dataclasses.fields(TutorSettings)}
    settings = parse_settings(TutorSettings, table, prefix="plugins.tutor", environ={})
    assert settings.practice_cron == "0 9 * * *"
    assert settings.zone.key == "Europe/Berlin"


def test_the_entry_point_names_the_plugin() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    path = pyproject["project"]["entry-points"]["botkit.plugins"]["tutor"]
    assert load_plugin("tutor", path) is tutor
