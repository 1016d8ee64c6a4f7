"""A course planned by the model: a list of short lessons, each a title and a goal."""

from __future__ import annotations

from botkit import ConversationLLM
from botkit_tutor._ask import Unusable, ask_json, object_schema, text_of
from botkit_tutor.progress import Lesson
from botkit_tutor.settings import TutorSettings

__all__ = ["PLAN_SCHEMA", "plan_course"]

# the length is checked here (a longer plan is cut), not in the schema: servers differ
# in which array keywords they accept, and a refused keyword would cost every skill the
# server's json_schema mode (botkit.llm.structured learns refusals per model)
PLAN_SCHEMA = object_schema(
    "tutor_plan",
    {
        "lessons": {
            "type": "array",
            "minItems": 1,
            "items": object_schema(
                "lesson", {"title": {"type": "string"}, "goal": {"type": "string"}}
            ).schema,
        }
    },
)


async def plan_course(llm: ConversationLLM, settings: TutorSettings, topic: str) -> list[Lesson]:
    """The lessons the model plans for ``topic``, at most ``settings.max_lessons``.

    Raises:
        Unusable: the plan is not JSON, misses the schema, or has a lesson without a
            title or goal.
        ServiceError: the model failed.
    """
    answer = await ask_json(
        llm,
        PLAN_SCHEMA,
        system=(
            f"{settings.instruction}\nPlan a short course on the topic the learner names, "
            f"as at most {settings.max_lessons} lessons that build on each other, each "
            "small enough to teach in a few sentences and check with one question. For "
            "each lesson give a short title and its goal: what the learner can do after "
            "it. Write them in the language of the topic."
        ),
        user=topic,
        purpose="tutor_plan",
        max_tokens=200 + 80 * settings.max_lessons,
    )
    lessons = []
    for number, item in enumerate(answer["lessons"][: settings.max_lessons], start=1):
        lessons.append(
            Lesson(
                text_of(item["title"], f"the title of lesson {number}", limit=120),
                text_of(item["goal"], f"the goal of lesson {number}", limit=400),
            )
        )
    if not lessons:  # the schema says at least one; a server may not enforce it
        raise Unusable("the plan has no lessons")
    return lessons
