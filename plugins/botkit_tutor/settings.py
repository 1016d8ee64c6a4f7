"""``[plugins.tutor]``: how courses are planned and taught, and the daily practice."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botkit import ConfigError, CronSchedule

__all__ = ["DEFAULT_INSTRUCTION", "TutorSettings"]

DEFAULT_INSTRUCTION = (
    "You are a patient tutor. Teach in short steps, with one concrete example each, in "
    "the language the learner writes in."
)


@dataclass(frozen=True, slots=True)
class TutorSettings:
    """``[plugins.tutor]``.

    Attributes:
        max_lessons: the most lessons a course is planned as (a longer plan is cut).
        max_reteach: how many times a lesson is taught again after a wrong answer
            before the course moves on (the lesson's weak points stay for practice).
        instruction: how the tutor teaches, before each request's own task.
        practice_cron: when each learner gets one practice question on a weak point
            (cron, in ``timezone``); unset: no practice.
        timezone: the time zone of ``practice_cron`` (IANA name).
    """

    max_lessons: int = 6
    max_reteach: int = 1
    instruction: str = DEFAULT_INSTRUCTION
    practice_cron: str | None = None
    timezone: str = "UTC"

    def problems(self, key: str) -> Iterator[ConfigError]:
        """Sizes out of range, a malformed cron or an unknown time zone, found when the
        table is parsed."""
        if not 1 <= self.max_lessons <= 20:
            yield ConfigError(f"{key}.max_lessons", "must be between 1 and 20")
        if self.max_reteach < 0:
            yield ConfigError(f"{key}.max_reteach", "must be 0 or more")
        if self.practice_cron is not None:
            try:
                CronSchedule.parse(self.practice_cron)
            except ValueError as exc:
                yield ConfigError(f"{key}.practice_cron", str(exc))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            yield ConfigError(f"{key}.timezone", f"{self.timezone!r} is not a known time zone")

    @property
    def zone(self) -> ZoneInfo:
        """``timezone`` as a ``ZoneInfo`` (checked when the table was parsed)."""
        return ZoneInfo(self.timezone)
