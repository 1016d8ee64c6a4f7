"""Named points where the fault-injection suite stops this process dead.

``BOTKIT_FAULT_AT=NAME[:N[:SIGNAL]]`` makes the process send itself ``SIGNAL`` (``kill``,
the default, or ``stop``) the ``N``-th time (default: the first) it reaches the point
``NAME``, so a test can cut a message's life exactly where it is about instead of racing
a kill from outside. Unset, a point costs one comparison.

The points:

- ``accept``: a message was stored; the adapter has not acknowledged it to its channel.
- ``group-commit``: several writes ran in one SQLite transaction, not yet committed.
- ``pg-commit``: a PostgreSQL write transaction ran its statements, not yet committed.
- ``live-shown``: a streamed answer's first part was posted and recorded.
"""

from __future__ import annotations

import os
import signal

__all__ = ["ENV", "fault_point"]

ENV = "BOTKIT_FAULT_AT"

_SIGNALS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}


def _parse(value: str | None) -> tuple[str, int, signal.Signals] | None:
    if not value:
        return None
    name, _, rest = value.partition(":")
    nth, _, how = rest.partition(":")
    return name, int(nth or 1), _SIGNALS[how or "kill"]


_TARGET = _parse(os.environ.get(ENV))
_reached = 0


def fault_point(name: str) -> None:
    """Mark reaching the point ``name``; the process stops here if a test asked it to."""
    global _reached
    if _TARGET is None or _TARGET[0] != name:
        return
    _reached += 1
    if _reached == _TARGET[1]:
        os.kill(os.getpid(), _TARGET[2])
