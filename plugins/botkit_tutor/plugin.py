"""The tutor plugin: ``/learn``, answers to its questions, ``/stop``, ``/progress`` and the
daily practice job."""

from __future__ import annotations

from botkit import Context, Message, Plugin, PluginRuntime, SkipHandler
from botkit_tutor import progress
from botkit_tutor._ask import Unusable
from botkit_tutor.grading import grade
from botkit_tutor.lesson import teach
from botkit_tutor.planning import plan_course
from botkit_tutor.practice import send_practice
from botkit_tutor.progress import Course, Learner, Question
from botkit_tutor.report import (
    STAND_IN,
    USAGE,
    asked,
    course_done,
    plan_outline,
    progress_report,
    verdict,
)
from botkit_tutor.settings import TutorSettings

__all__ = ["plugin"]

MAX_TOPIC = 200

plugin = Plugin(
    "tutor",
    description="Courses taught one step at a time, graded, with progress kept",
    settings_class=TutorSettings,
)


@plugin.on_command("learn", description="Start a course: /learn <topic>; /learn alone resumes")
async def learn(message: Message, ctx: Context) -> str:
    """Start a course on the topic, resume the one in progress, or stop (``/learn stop``)."""
    topic = " ".join(ctx.args.split())
    if topic.casefold() == "stop":
        return await _stop(message, ctx)
    learner = await progress.load(ctx.state, _key(message)) or Learner.of(message)
    replayed = _replayed(learner, message)
    if replayed is not None:
        return replayed
    if len(topic) > MAX_TOPIC:
        return f"That topic is too long: name it in at most {MAX_TOPIC} characters."
    learner.conversation = message.conversation  # the tutor follows the learner here
    learner.paused = False
    if not topic:
        reply = await _resume(ctx, learner)
    else:
        course = learner.find_unfinished(topic)
        if course is not None:
            learner.active = course.id
            reply = await _resume(ctx, learner)
        elif ctx.llm.stand_in:
            return STAND_IN
        else:
            try:
                lessons = await plan_course(ctx.llm, _settings(ctx), topic)
            except Unusable as exc:
                return (
                    f"I couldn't plan a course on {topic}: the model's plan was not usable "
                    f"({exc}). Try again, or name the topic differently."
                )
            course = learner.add_course(topic, lessons)
            reply = plan_outline(course) + "\n\n" + await _teach(ctx, learner, course)
    return await _answered(ctx, learner, message, reply)


@plugin.on_command("stop", description="Leave the lesson; /learn picks it up again")
async def stop(message: Message, ctx: Context) -> str:
    """Leave tutor mode: messages go to the other skills, and no practice comes."""
    return await _stop(message, ctx)


async def _stop(message: Message, ctx: Context) -> str:
    learner = await progress.load(ctx.state, _key(message))
    if learner is None or learner.paused or (learner.question is None and not learner.current):
        return "You are not in a lesson. /learn <topic> starts one."
    learner.paused = True
    await progress.save(ctx.state, learner)
    course = learner.current
    where = (
        f" {course.topic} at lesson {course.current + 1} of {len(course.lessons)}"
        if course
        else ""
    )
    return f"Paused{where}. Send /learn to pick it up again."


@plugin.on_command("progress", description="Your courses, scores and weak points")
async def show_progress(message: Message, ctx: Context) -> str:
    """Every course with its lessons done and scores, and the learner's weak points."""
    learner = await progress.load(ctx.state, _key(message))
    if learner is None or not learner.courses:
        return "No courses yet. Start one with /learn <topic>."
    return progress_report(learner, message.conversation)


def _may_answer(message: Message) -> bool:
    """Whether a message could be an answer (never a command, nor a bot's)."""
    text = message.text.strip()
    return bool(text) and not text.startswith("/") and not message.sender.is_bot


@plugin.on_message(_may_answer)
async def answer(message: Message, ctx: Context) -> str:
    """Grade the answer to the question waiting in this conversation, then teach on;
    any other message goes on to the other skills."""
    learner = await progress.load(ctx.state, _key(message))
    if learner is None:
        raise SkipHandler
    replayed = _replayed(learner, message)  # before the check: the answer ended the wait
    if replayed is not None:
        return replayed
    if not learner.waits_in(message.conversation):
        raise SkipHandler
    if ctx.llm.stand_in:
        return STAND_IN
    question = learner.question
    assert question is not None  # waits_in
    if question.kind == "practice":
        reply = await _grade_practice(ctx, learner, question, message.text)
    else:
        course = learner.course(question.course)
        if course is None or course.finished:  # forgotten since: nothing to grade against
            learner.question = None
            await progress.save(ctx.state, learner)
            raise SkipHandler
        reply = await _grade_lesson(ctx, learner, course, question, message.text)
    return await _answered(ctx, learner, message, reply)


async def _grade_lesson(
    ctx: Context, learner: Learner, course: Course, question: Question, text: str
) -> str:
    settings = _settings(ctx)
    lesson = course.lesson
    context = (
        f"Course: {course.topic}\nLesson: {lesson.title}. Goal: {lesson.goal}\n"
        f"What was taught: {question.explanation}"
    )
    try:
        result = await grade(ctx.llm, settings, question, text, context=context)
    except Unusable as exc:
        return (
            f"I couldn't grade that answer ({exc}). Send it again, or /stop to leave the lesson."
        )
    lesson.attempts += 1
    lesson.score = result.score
    learner.note_weak_points(
        result.weak_points or ([] if result.correct else [lesson.title]), course.topic
    )
    head = verdict(result)
    if not result.correct and lesson.attempts <= settings.max_reteach:
        return f"{head}\n\nLet's look at it another way.\n\n" + await _teach(
            ctx, learner, course, again=(question, result.feedback)
        )
    lesson.done = True
    if not result.correct:
        head += "\nWe'll move on; it stays on your list of weak points to practise."
    course.current += 1
    if course.current == len(course.lessons):
        course.finished_at = progress.now()
        learner.question = None
        return f"{head}\n\n{course_done(course, learner)}"
    return f"{head}\n\n" + await _teach(ctx, learner, course)


async def _grade_practice(ctx: Context, learner: Learner, question: Question, text: str) -> str:
    point = question.weak_point or ""
    topic = next((w.topic for w in learner.weak_points if w.text == point), "")
    context = f"Practice on a weak point{f' in {topic}' if topic else ''}: {point}"
    try:
        result = await grade(ctx.llm, _settings(ctx), question, text, context=context)
    except Unusable as exc:
        return f"I couldn't grade that answer ({exc}). Send it again, or /stop."
    learner.question = None
    head = verdict(result)
    if result.correct:
        learner.resolve_weak_point(point)
        head += f"\n{point!r} is off your list of weak points."
    else:
        learner.note_weak_points([point], topic)
    course = learner.current
    if course is not None:
        head += f"\nSend /learn to go on with {course.topic}."
    return head


async def _resume(ctx: Context, learner: Learner) -> str:
    """The waiting question again, or the current lesson taught (afresh)."""
    course = learner.current
    question = learner.question
    if question is not None and (question.kind == "practice" or question.course == learner.active):
        return "Picking up where you stopped.\n\n" + asked(question, course)
    if course is None:
        return USAGE
    if ctx.llm.stand_in:
        return STAND_IN
    return "Picking up where you stopped.\n\n" + await _teach(ctx, learner, course)


async def _teach(
    ctx: Context, learner: Learner, course: Course, *, again: tuple[Question, str] | None = None
) -> str:
    """Teach the course's current lesson; the step becomes the waiting question."""
    try:
        question = await teach(
            ctx.llm, _settings(ctx), course, weak_points=learner.weak_points, again=again
        )
    except Unusable as exc:
        learner.question = None
        return f"I couldn't prepare lesson {course.current + 1} ({exc}). Send /learn to try again."
    learner.question = question
    return asked(question, course)


async def _answered(ctx: Context, learner: Learner, message: Message, reply: str) -> str:
    """Store the learner with this answer, so a message answered again after a crash
    gets the same reply instead of advancing twice."""
    if message.id is not None:
        learner.last_answer = (message.id, reply)
    await progress.save(ctx.state, learner)
    return reply


def _replayed(learner: Learner, message: Message) -> str | None:
    last = learner.last_answer
    return (
        last[1] if last is not None and message.id is not None and last[0] == message.id else None
    )


def _key(message: Message) -> str:
    return progress.learner_key(message.channel, message.sender.id)


def _settings(runtime: PluginRuntime) -> TutorSettings:
    return runtime.settings_as(TutorSettings)


@plugin.on_schedule(every=60)
async def practice(job: PluginRuntime) -> None:
    """Send each learner a practice question on a weak point when ``practice_cron``
    says it is time (checked every minute; the scheduler runs it in one process)."""
    await send_practice(job, _settings(job))
