"""What the tutor says: steps, verdicts, a finished course, ``/progress``."""

from __future__ import annotations

from botkit import ConversationRef
from botkit_tutor.grading import Grade
from botkit_tutor.progress import Course, Learner, Question

__all__ = [
    "STAND_IN",
    "USAGE",
    "asked",
    "course_done",
    "plan_outline",
    "progress_report",
    "verdict",
]

STAND_IN = (
    "I can't teach with the offline stand-in model: it only repeats what you write, so "
    "it can neither plan a course nor grade an answer. Configure a real model "
    "(OPENAI_API_KEY, or llm.base_url for a local server) and send /learn again."
)
USAGE = "You have no course in progress. /learn <topic> starts one; /progress shows your courses."


def plan_outline(course: Course) -> str:
    """The course's lessons, as planned."""
    lines = [f"{course.topic}: a course in {len(course.lessons)} lessons."]
    lines += [f"{n}. {lesson.title}" for n, lesson in enumerate(course.lessons, start=1)]
    return "\n".join(lines)


def asked(question: Question, course: Course | None) -> str:
    """A teaching step (or a practice question) as the learner sees it."""
    if question.kind == "practice" or course is None:
        return f"Practice ({question.weak_point}): {question.text}"
    lesson = course.lesson
    return (
        f"Lesson {course.current + 1} of {len(course.lessons)}: {lesson.title}\n"
        f"{question.explanation}\n\nQuestion: {question.text}\n"
        "(Answer here; /stop leaves the lesson.)"
    )


def verdict(result: Grade) -> str:
    """The grade of an answer."""
    word = "Right" if result.correct else "Not quite"
    return f"{word} (score {result.score:.0%}). {result.feedback}"


def course_done(course: Course, learner: Learner) -> str:
    """The end of a course."""
    average = course.average
    score = f", average score {average:.0%}" if average is not None else ""
    lines = [f"Course complete: {course.topic}, {course.done} lessons{score}."]
    weak = [w.text for w in learner.weak_points if w.topic == course.topic]
    if weak:
        lines.append("To practise: " + "; ".join(weak[:5]) + ".")
    lines.append("/progress shows all your courses.")
    return "\n".join(lines)


def progress_report(learner: Learner, here: ConversationRef) -> str:
    """Every course (lessons done, average score, where it stands) and the weak points."""
    lines = ["Your courses:"]
    for course in learner.courses:
        average = course.average
        score = f", average score {average:.0%}" if average is not None else ""
        if course.finished:
            status = "finished"
        else:
            status = f"next: lesson {course.current + 1}, {course.lesson.title}"
            if learner.paused and course.id == learner.active:
                status += " (paused)"
        lines.append(
            f"- {course.topic}: {course.done} of {len(course.lessons)} lessons done"
            f"{score}; {status}"
        )
    if learner.weak_points:
        points = [
            f"{w.text} ({w.topic}, {w.count} times)" if w.count > 1 else f"{w.text} ({w.topic})"
            for w in learner.weak_points[:10]
        ]
        lines.append("Weak points: " + "; ".join(points) + ".")
    if learner.question is not None and not learner.paused:
        where = "here" if learner.conversation == here else "in another conversation"
        lines.append(f"A question is waiting for your answer {where}.")
    return "\n".join(lines)
