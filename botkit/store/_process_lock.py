"""One process per SQLite file: an exclusive lock on a file next to the database.

SQLite serves one process (see ``DESIGN.md``, "Several processes"): two bots on one
file would each resume and answer the other's messages. ``botkit run`` and ``botkit
chat`` hold this lock for their whole life, so a second one on the same file stops at
start with a one-line message instead. It is an exclusive, non-blocking ``flock`` on
``<database>.lock``: the kernel drops it when the process ends, however it ends, so a
crash never leaves a stale lock behind. The lock file itself stays (removing it would let
a third process lock a new file while a second still holds the old one).

Only the commands that run a bot take it: ``Bot`` objects in one program (tests, an
application embedding botkit) and ``botkit db upgrade`` or ``botkit usage`` next to a
running bot are SQLite's own locking's business, and it handles them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from botkit.exceptions import StoreError

__all__ = ["lock_path", "one_process_per_sqlite_file"]


def lock_path(url: str) -> Path | None:
    """The lock file of the SQLite database at ``url``; ``None`` when there is none to
    lock (PostgreSQL, an in-memory database, a ``file:`` URI)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).expanduser().resolve()
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def one_process_per_sqlite_file(url: str) -> Iterator[None]:
    """Hold the SQLite database at ``url`` for this process until the block ends.

    Args:
        url: the database URL; anything but an SQLite file is not locked.

    Raises:
        StoreError: another process holds the file, in one line that says what to do.
    """
    path = lock_path(url)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            by = f" (pid {holder})" if holder.isdigit() else ""
            raise StoreError(
                f"the SQLite database {path.with_suffix('')} is in use by another botkit "
                f"process{by}; SQLite serves one process: use PostgreSQL to run several"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
