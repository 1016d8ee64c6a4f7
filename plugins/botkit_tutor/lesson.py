"""One teaching step (a short explanation and a question), and practice questions."""

from __future__ import annotations

from botkit import ConversationLLM
from botkit_tutor._ask import ask_json, object_schema, text_of
from botkit_tutor.progress import Course, Question, WeakPoint
from botkit_tutor.settings import TutorSettings

__all__ = ["PRACTICE_SCHEMA", "STEP_SCHEMA", "practice_question", "teach"]

STEP_SCHEMA = object_schema(
    "tutor_step", {"explanation": {"type": "string"}, "question": {"type": "string"}}
)
PRACTICE_SCHEMA = object_schema("tutor_practice", {"question": {"type": "string"}})


async def teach(
    llm: ConversationLLM,
    settings: TutorSettings,
    course: Course,
    *,
    weak_points: list[WeakPoint],
    again: tuple[Question, str] | None = None,
) -> Question:
    """The step teaching ``course``'s current lesson; with ``again`` (the question the
    learner got wrong and the grader's feedback), taught once more another way.

    Raises:
        Unusable: the model's answer has no explanation or no question.
        ServiceError: the model failed.
    """
    lesson = course.lesson
    outline = "\n".join(
        f"{n}. {item.title}{' (this one)' if n - 1 == course.current else ''}"
        for n, item in enumerate(course.lessons, start=1)
    )
    lines = [
        f"Course: {course.topic}",
        outline,
        f"Teach lesson {course.current + 1}: {lesson.title}. Goal: {lesson.goal}",
    ]
    known = [w.text for w in weak_points if w.topic == course.topic][:5]
    if known:
        lines.append("The learner found these hard before: " + "; ".join(known))
    if again is not None:
        question, feedback = again
        lines.append(
            f"They answered the question {question.text!r} wrongly: {feedback}\n"
            "Explain it again another way, simpler, aimed at that mistake, and ask a new "
            "question."
        )
    answer = await ask_json(
        llm,
        STEP_SCHEMA,
        system=(
            f"{settings.instruction}\nWrite one teaching step: an explanation of a few "
            "sentences (explanation), then one question that checks the lesson's goal "
            "and that the learner can answer in a sentence or two (question)."
        ),
        user="\n".join(lines),
        purpose="tutor_lesson",
        max_tokens=700,
    )
    return Question(
        "lesson",
        text_of(answer["question"], "the question", limit=1000),
        explanation=text_of(answer["explanation"], "the explanation"),
        course=course.id,
    )


async def practice_question(
    llm: ConversationLLM, settings: TutorSettings, weak_point: WeakPoint
) -> Question:
    """One practice question on ``weak_point``.

    Raises:
        Unusable: the model's answer has no question.
        ServiceError: the model failed.
    """
    answer = await ask_json(
        llm,
        PRACTICE_SCHEMA,
        system=(
            f"{settings.instruction}\nWrite one short practice question (question) that "
            "checks whether the learner has overcome the weakness described, answerable "
            "in a sentence or two."
        ),
        user=f"Topic: {weak_point.topic}\nWeakness: {weak_point.text}",
        purpose="tutor_practice",
        max_tokens=300,
    )
    return Question(
        "practice",
        text_of(answer["question"], "the question", limit=1000),
        weak_point=weak_point.text,
    )
