"""The garbage collector's settings for a long-running bot process.

Measured under a burst of 1,000 conversations at once (``python -m bench --only
concurrency``): with Python's defaults the collector took about a fifth of the bot's
CPU. Two reasons, each answered here:

- a full collection walks every container alive, the tokenizer's tables among them
  (about 60 ms per walk on the benchmark machine, several walks per burst); what
  start-up loaded lives as long as the process, so it is frozen out of every later walk;
- the youngest generation is collected every 700 allocations; a burst allocates
  thousands of short-lived objects per message (tasks, futures, rows), and each young
  collection walks whatever of them is still alive. Every 20,000 allocations, most of
  them are gone by refcount before the collector ever sees them.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "tune_gc"]

YOUNG_THRESHOLD = 20_000


def tune_gc(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Collect once, freeze what is alive now, and collect young objects less often.

    Call it once start-up is done (``Bot.run_until_stopped`` does, unless
    ``bot.tune_gc = false``): what was loaded by then stays out of every later
    collection. Cycles made from then on are collected as before, only in bigger steps.
    The older generations keep their thresholds.
    """
    if young_threshold < 1:
        raise ValueError("young_threshold must be at least 1")
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
