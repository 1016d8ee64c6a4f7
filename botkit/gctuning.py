"""The garbage collector's settings for a long-running bot process.

Measured under a burst of 1,000 conversations at once (``python -m bench --only
concurrency``): with Python's defaults the collector took about a fifth of the bot's
CPU. Two reasons, each answered here:

- a full collection walks every container alive, the tokenizer's tables among them
  (about 60 ms per walk on the benchmark machine, several walks per burst); what
  start-up loaded lives as long as the bot, so it is frozen out of every later walk;
- the youngest generation is collected every 700 allocations; a burst allocates
  thousands of short-lived objects per message (tasks, futures, rows), and each young
  collection walks whatever of them is still alive. Every 20,000 allocations, most of
  them are gone by refcount before the collector ever sees them.

``restore_gc`` undoes it when the bot stops: frozen objects are never collected, so a
process that runs one bot after another must thaw the first before it can be freed.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

__all__ = ["YOUNG_THRESHOLD", "CollectorSettings", "restore_gc", "tune_gc"]

YOUNG_THRESHOLD = 20_000


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    """What :func:`tune_gc` found, for :func:`restore_gc` to put back.

    Attributes:
        threshold: the collector's thresholds before.
        froze: whether ``tune_gc`` froze the heap (nothing was frozen before it).
    """

    threshold: tuple[int, int, int]
    froze: bool


def tune_gc(young_threshold: int = YOUNG_THRESHOLD) -> CollectorSettings | None:
    """Collect once, freeze what is alive now, and collect young objects less often.

    Call it once start-up is done (``Bot.run_until_stopped`` does, unless
    ``bot.tune_gc = false``, and ``Bot.stop`` undoes it): what was loaded by then stays
    out of every later collection. Cycles made from then on are collected as before,
    only in bigger steps. A heap something else already froze is left as it is; a young
    threshold set higher than ``young_threshold`` is kept; the older generations keep
    their thresholds; a disabled collector is left alone.

    Returns:
        What to hand to :func:`restore_gc`, or ``None`` when nothing was changed.
    """
    if young_threshold < 1:
        raise ValueError("young_threshold must be at least 1")
    if not gc.isenabled():
        return None
    young, middle, old = before = gc.get_threshold()
    froze = gc.get_freeze_count() == 0
    if froze:
        gc.collect()
        gc.freeze()
    gc.set_threshold(max(young, young_threshold), middle, old)
    return CollectorSettings(before, froze)


def restore_gc(previous: CollectorSettings) -> None:
    """Undo :func:`tune_gc`: thaw what it froze and put the thresholds back."""
    if previous.froze:
        gc.unfreeze()
    gc.set_threshold(*previous.threshold)
