"""Each learner's courses, the question waiting for their answer, and their weak points.

A learner is one person on one channel: the channel's name and the sender's id there
(``telegram:42``, ``slack:U123``, ``email:ann@example.com``). Channels share no user
identity, so the same person on Telegram and on Slack is two learners. Within a channel
a learner's progress follows them into any conversation: ``/learn`` resumes in the one
it is sent from.

The whole record is one JSON value in the plugin's state, under ``learner:<key>``, read
and written whole: a learner's messages are answered one at a time in the conversation
that holds their question.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from botkit import ConversationRef, KeyValueState, Message

__all__ = [
    "KEY_PREFIX",
    "Course",
    "Learner",
    "Lesson",
    "Question",
    "WeakPoint",
    "learner_key",
    "load",
    "now",
    "save",
]

KEY_PREFIX = "learner:"
MAX_COURSES = 20  # the oldest finished ones are forgotten past this
MAX_WEAK_POINTS = 20  # the least seen ones are forgotten past this


def learner_key(channel: str, sender_id: str) -> str:
    """The learner's key in the plugin's state."""
    return f"{KEY_PREFIX}{channel}:{sender_id}"


def now() -> str:
    """The time now, as stored (UTC, ISO 8601)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(slots=True)
class Lesson:
    """One planned lesson, and how the learner did."""

    title: str
    goal: str
    done: bool = False
    score: float | None = None  # of the last graded answer, 0 to 1
    attempts: int = 0  # answers graded


@dataclass(slots=True)
class Course:
    """A topic planned as lessons; ``current`` is the lesson being taught."""

    id: int
    topic: str
    lessons: list[Lesson]
    current: int = 0
    started_at: str = field(default_factory=now)
    finished_at: str | None = None

    @property
    def finished(self) -> bool:
        """Whether every lesson was taught."""
        return self.finished_at is not None

    @property
    def lesson(self) -> Lesson:
        """The lesson being taught."""
        return self.lessons[self.current]

    @property
    def done(self) -> int:
        """Lessons done."""
        return sum(1 for lesson in self.lessons if lesson.done)

    @property
    def average(self) -> float | None:
        """The mean score of the graded lessons, ``None`` before any."""
        scores = [lesson.score for lesson in self.lessons if lesson.score is not None]
        return sum(scores) / len(scores) if scores else None


@dataclass(slots=True)
class Question:
    """What the learner was asked and has not answered yet.

    Attributes:
        kind: ``"lesson"`` (a step of a course) or ``"practice"`` (a weak point).
        text: the question.
        explanation: what was taught before it (shown again when the learner resumes).
        course: the course's id, for a lesson.
        weak_point: the weak point practised, for practice.
    """

    kind: Literal["lesson", "practice"]
    text: str
    explanation: str = ""
    course: int | None = None
    weak_point: str | None = None


@dataclass(slots=True)
class WeakPoint:
    """Something the learner got wrong, by the grader's words."""

    text: str
    topic: str
    count: int = 1  # times it was found
    last_seen: str = field(default_factory=now)
    practised: str | None = None  # when a practice question last asked about it


@dataclass(slots=True)
class Learner:
    """One learner's whole record.

    Attributes:
        key: ``learner:<channel>:<sender id>``.
        name: how the learner is called (their display name).
        conversation: where they last learned; their question waits there, and daily
            practice is sent there.
        paused: ``/stop`` was sent: their messages go to the other skills, and no
            practice comes, until ``/learn``.
        courses: oldest first.
        active: the id of the course ``/learn`` resumes.
        question: the question waiting for an answer.
        weak_points: most recent first.
        last_answer: ``(message id, reply)`` of the last message the tutor answered, so
            a message answered again after a crash gets the same reply.
    """

    key: str
    name: str
    conversation: ConversationRef | None = None
    paused: bool = False
    courses: list[Course] = field(default_factory=list)
    active: int | None = None
    question: Question | None = None
    weak_points: list[WeakPoint] = field(default_factory=list)
    last_answer: tuple[int, str] | None = None

    @classmethod
    def of(cls, message: Message) -> Learner:
        """A new learner for the sender of ``message``."""
        return cls(
            learner_key(message.channel, message.sender.id),
            message.sender.display_name,
            message.conversation,
        )

    def waits_in(self, conversation: ConversationRef) -> bool:
        """Whether a question waits for the learner's answer in ``conversation``."""
        return self.question is not None and not self.paused and self.conversation == conversation

    def course(self, course_id: int | None) -> Course | None:
        """The course with that id."""
        return next((c for c in self.courses if c.id == course_id), None)

    @property
    def current(self) -> Course | None:
        """The course ``/learn`` resumes: the active one, unless finished."""
        course = self.course(self.active)
        return course if course is not None and not course.finished else None

    def add_course(self, topic: str, lessons: list[Lesson]) -> Course:
        """Start a course (the active one from now on); the oldest finished courses
        are forgotten past ``MAX_COURSES``."""
        course = Course(max((c.id for c in self.courses), default=0) + 1, topic, lessons)
        self.courses.append(course)
        while len(self.courses) > MAX_COURSES:
            oldest = next((c for c in self.courses if c.finished), self.courses[0])
            self.courses.remove(oldest)
        self.active = course.id
        return course

    def find_unfinished(self, topic: str) -> Course | None:
        """The newest unfinished course on ``topic`` (any case)."""
        wanted = topic.casefold()
        return next(
            (c for c in reversed(self.courses) if not c.finished and c.topic.casefold() == wanted),
            None,
        )

    def note_weak_points(self, texts: list[str], topic: str) -> None:
        """Record what the grader found weak: a point seen before counts again and comes
        first."""
        for text in texts:
            text = " ".join(text.split())[:200]
            if not text:
                continue
            known = next(
                (w for w in self.weak_points if w.text.casefold() == text.casefold()), None
            )
            if known is None:
                known = WeakPoint(text, topic, count=0)
            else:
                self.weak_points.remove(known)
            known.count += 1
            known.last_seen = now()
            self.weak_points.insert(0, known)
        del self.weak_points[MAX_WEAK_POINTS:]

    def resolve_weak_point(self, text: str) -> None:
        """Forget a weak point the learner has now answered correctly."""
        self.weak_points = [w for w in self.weak_points if w.text != text]

    def weak_point_to_practise(self) -> WeakPoint | None:
        """The weak point practised longest ago (never first), seen most often first."""
        if not self.weak_points:
            return None
        return min(self.weak_points, key=lambda w: (w.practised or "", -w.count))

    def to_json(self) -> dict[str, Any]:
        """The record as stored."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Learner:
        """A record read back from the store."""
        ref = data.get("conversation")
        question = data.get("question")
        last = data.get("last_answer")
        return cls(
            key=data["key"],
            name=data.get("name", ""),
            conversation=ConversationRef(**ref) if ref else None,
            paused=bool(data.get("paused", False)),
            courses=[
                Course(**{**c, "lessons": [Lesson(**lesson) for lesson in c["lessons"]]})
                for c in data.get("courses", [])
            ],
            active=data.get("active"),
            question=Question(**question) if question else None,
            weak_points=[WeakPoint(**w) for w in data.get("weak_points", [])],
            last_answer=(int(last[0]), str(last[1])) if last else None,
        )


async def load(state: KeyValueState, key: str) -> Learner | None:
    """The learner stored under ``key``, if any."""
    data = await state.get(key)
    return Learner.from_json(data) if isinstance(data, dict) else None


async def save(state: KeyValueState, learner: Learner) -> None:
    """Store the learner's whole record."""
    await state.set(learner.key, learner.to_json())
