"""A personalised tutor: courses planned by the model and taught one step at a time.

``/learn <topic>`` asks the model for a plan of short lessons (JSON, validated), then
teaches the first: a short explanation and a question. The learner's next message in
that conversation is their answer: graded by the model in JSON (right or wrong, a score,
feedback, weak points), then the course moves on, or the lesson is taught again another
way. Each learner's courses, scores and weak points are kept in the plugin's state, so
``/learn`` resumes where they stopped, after a restart too; ``/stop`` leaves the lesson,
``/progress`` shows it all. With ``practice_cron`` set, each learner gets a practice
question on a weak point at that time, from one process cluster-wide.
"""

from botkit_tutor.grading import Grade
from botkit_tutor.plugin import plugin
from botkit_tutor.progress import Course, Learner, Lesson, Question, WeakPoint
from botkit_tutor.settings import TutorSettings

__all__ = [
    "Course",
    "Grade",
    "Learner",
    "Lesson",
    "Question",
    "TutorSettings",
    "WeakPoint",
    "plugin",
]
