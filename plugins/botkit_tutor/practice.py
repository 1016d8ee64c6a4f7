"""Daily practice: at ``practice_cron``, each learner gets one question on a weak point.

The job that calls :func:`send_practice` runs every minute in one process cluster-wide
(the scheduler's lease); the time it last found due is kept in the plugin's state, so
each time ``practice_cron`` names is sent once, even across restarts. A time missed by
more than ``LATE`` (the bot was down) is skipped rather than sent hours late.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from botkit import CronSchedule, PluginRuntime, Reply, ServiceError
from botkit_tutor import progress
from botkit_tutor._ask import Unusable
from botkit_tutor.lesson import practice_question
from botkit_tutor.progress import Learner
from botkit_tutor.settings import TutorSettings

__all__ = ["LAST_KEY", "LATE", "send_practice"]

log = logging.getLogger(__name__)

LAST_KEY = "practice:last"
LATE = timedelta(hours=1)


async def send_practice(
    job: PluginRuntime, settings: TutorSettings, now: datetime | None = None
) -> int:
    """Send the practice questions if ``settings.practice_cron`` is due; how many went."""
    if settings.practice_cron is None:
        return 0
    moment = now or datetime.now(UTC)
    last = await job.state.get(LAST_KEY)
    if last is None:
        await job.state.set(LAST_KEY, moment.isoformat())  # first run: from now on
        return 0
    schedule = CronSchedule.parse(settings.practice_cron, settings.zone)
    due = schedule.next_after(datetime.fromisoformat(last))
    if due > moment:
        return 0
    await job.state.set(LAST_KEY, moment.isoformat())  # at most once, even if sending fails
    if moment - due > LATE:
        log.info("tutor practice due at %s skipped: more than %s late", due, LATE)
        return 0
    if job.llm.stand_in:
        log.info("tutor practice skipped: the offline stand-in model cannot write questions")
        return 0
    sent = 0
    for key in await job.state_keys(progress.KEY_PREFIX):
        try:
            learner = await progress.load(job.state, key)
            if learner is not None and await _practise(job, settings, learner, moment):
                sent += 1
        except (ServiceError, Unusable) as exc:  # one learner's failure stops no other
            log.warning("tutor practice for %s not sent: %s", key, exc)
    return sent


async def _practise(
    job: PluginRuntime, settings: TutorSettings, learner: Learner, moment: datetime
) -> bool:
    """Send ``learner`` one practice question, if they are learning and have a weak
    point (and no question already waits for them); whether it was sent."""
    point = learner.weak_point_to_practise()
    if learner.paused or learner.question is not None or point is None:
        return False
    if learner.conversation is None:
        return False
    question = await practice_question(job.llm, settings, point)
    # sent before it is stored: a crash between leaves an unasked question unawaited,
    # rather than the learner's next message graded against a question never seen
    await job.send(
        learner.conversation,
        Reply(f"Daily practice on {point.topic}: {question.text}\n(Answer here; /stop to pause.)"),
    )
    point.practised = moment.isoformat(timespec="seconds")
    learner.question = question
    await progress.save(job.state, learner)
    return True
