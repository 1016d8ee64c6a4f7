"""Where one user's wait goes: botkit's answer to a user alone, stage by stage.

Installed in a botkit peers worker (``python -m bench._peer_worker botkit --stages``),
before the bot is built: it wraps the handing over of each message (``BotkitPipeline.one``),
the store's two writes on an answer's way (the accept and the finish, each returning only
after its commit), the model call, the channel's ``send``, and SQLite's commit on the
writer thread, noting the time (``time.perf_counter``) at each while switched on (the
measured phase). With one user the messages follow one another, so the marks fall in
order, message after message; :meth:`StageClock.report` gives each stage's median.

It reaches into botkit's store, model client and the peers' channel: a benchmark's probe,
not an API; ``tests/test_bench_smoke.py`` runs it, so a change there that breaks it shows.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from statistics import median
from typing import Any

# the stages, in order: (name, the mark it starts at, the mark it ends at)
STAGES = (
    ("accept", "start", "accepted"),  # stored and committed
    ("to the model", "accepted", "asking"),  # handed to the dispatcher, prompt built
    ("model call", "asking", "answered"),
    ("to the finish", "answered", "finishing"),
    ("finish", "finishing", "finished"),  # the reply stored with the outcome, committed
    ("to the channel", "finished", "sent"),
)
TOTAL = "total"
_WRITES = {"accept message": ("", "accepted"), "finish message": ("finishing", "finished")}


class StageClock:
    """The marks of each message's way, while :attr:`on`; the commits' durations."""

    def __init__(self) -> None:
        self.on = False
        self.marks: list[tuple[str, float]] = []
        self.commits: list[float] = []

    def install(self) -> None:
        """Wrap what marks the stages (once, before the bot is built)."""
        from sqlalchemy.engine.default import DefaultDialect

        from bench._pipelines import BenchAdapter, BotkitPipeline
        from botkit.llm.client import OpenAIChatClient
        from botkit.store._section import Section

        BotkitPipeline.one = self._around(BotkitPipeline.one, "start", "")  # type: ignore[method-assign]
        OpenAIChatClient._post_plain = self._around(  # type: ignore[method-assign]
            OpenAIChatClient._post_plain, "asking", "answered"
        )
        BenchAdapter.send = self._around(BenchAdapter.send, "sent", "")  # type: ignore[method-assign]
        write = Section._write

        @functools.wraps(write)
        async def _write(section: Section, what: str, op: Callable[..., Any]) -> Any:
            before, after = _WRITES.get(what, ("", ""))
            self._mark(before)
            try:
                return await write(section, what, op)
            finally:
                self._mark(after)

        Section._write = _write  # type: ignore[method-assign,assignment]
        commit: Callable[[DefaultDialect, Any], None] = DefaultDialect.do_commit

        def do_commit(dialect: DefaultDialect, connection: Any) -> None:
            started = time.perf_counter()
            try:
                commit(dialect, connection)
            finally:
                if self.on:  # in the writer thread: a list's append is atomic
                    self.commits.append(time.perf_counter() - started)

        DefaultDialect.do_commit = do_commit  # type: ignore[method-assign]

    def _mark(self, name: str) -> None:
        if self.on and name:
            self.marks.append((name, time.perf_counter()))

    def _around(self, call: Callable[..., Any], before: str, after: str) -> Callable[..., Any]:
        """The coroutine function ``call``, marked ``before`` it starts and ``after`` it
        returns."""

        @functools.wraps(call)
        async def marked(*args: Any, **kwargs: Any) -> Any:
            self._mark(before)
            try:
                return await call(*args, **kwargs)
            finally:
                self._mark(after)

        return marked

    def report(self) -> dict[str, Any]:
        """Each stage's median in seconds (and the whole wait's), over the messages whose
        marks are all there; the commits' median and their number per message."""
        messages: list[dict[str, float]] = []
        for name, at in self.marks:
            if name == "start":
                messages.append({})
            if messages and name not in messages[-1]:  # the first mark of each name
                messages[-1][name] = at
        wanted = {mark for _, start, end in STAGES for mark in (start, end)}
        whole = [m for m in messages if wanted <= m.keys()]
        stages = {
            name: median(m[end] - m[start] for m in whole) if whole else float("nan")
            for name, start, end in STAGES
        }
        stages[TOTAL] = median(m["sent"] - m["start"] for m in whole) if whole else float("nan")
        return {
            "messages": len(whole),
            "stages": stages,
            "commit": median(self.commits) if self.commits else float("nan"),
            "commits": len(self.commits) / max(len(messages), 1),
        }
