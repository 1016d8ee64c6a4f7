"""What botkit's SQLite writer thread spends its CPU on, operation by operation.

Installed in a botkit peers worker (``python -m bench._peer_worker botkit
--writer-ops``): it wraps the engine's batch runner and group runner, and the context read
an accept makes, with the writer thread's own CPU clock (``time.thread_time``), counting
only while switched on (the measured phase). A batch's CPU less its operations' is its
transaction's: BEGIN, COMMIT and the sync of the write-ahead log.

It reaches into ``botkit.store.engine`` and ``botkit.store._batch``: a benchmark's probe,
not an API; ``tests/test_bench_smoke.py`` runs it, so a change there that breaks it shows.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

TRANSACTIONS = "transactions"  # BEGIN, COMMIT, the sync: a batch's CPU less its operations'
# the turns an accept reads for its answer (within "Accept"); a read after a cache miss,
# on a reader thread, counts here too (none happen once the conversations are cached)
CONTEXT_READ = "context read"


class WriterOps:
    """CPU seconds and counts by operation, while :attr:`on`."""

    def __init__(self) -> None:
        self.on = False
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.count: Counter[str] = Counter()

    def install(self) -> None:
        """Wrap the writer's runners (once, before the database is opened)."""
        from botkit.store import _batch, engine

        engine._run_group = self._timed(  # (conn, group): a run of one kind of write
            engine._run_group, lambda a: (operation_name(a[1][0].op), len(a[1]))
        )
        engine.Database._run_writes = self._timed(  # type: ignore[method-assign]
            engine.Database._run_writes, lambda a: ("batch", 1)
        )
        read = _batch.ReadContext
        read.__call__ = self._timed(read.__call__, lambda a: (CONTEXT_READ, 1))  # type: ignore[method-assign]
        read.together = classmethod(  # type: ignore[method-assign,assignment]
            self._timed(read.together.__func__, lambda a: (CONTEXT_READ, len(a[2])))  # type: ignore[attr-defined]
        )

    def _timed(
        self, call: Callable[..., Any], named: Callable[[tuple[Any, ...]], tuple[str, int]]
    ) -> Callable[..., Any]:
        """``call``, its CPU counted while :attr:`on` under the (name, count) that
        ``named`` gives for its arguments."""

        def timed(*args: Any) -> Any:
            if not self.on:
                return call(*args)
            started = time.thread_time()
            try:
                return call(*args)
            finally:
                self._add(*named(args), started)

        return timed

    def _add(self, name: str, n: int, started: float) -> None:
        self.cpu[name] += time.thread_time() - started
        self.count[name] += n

    def report(self) -> dict[str, list[float]]:
        """``{operation: [count, CPU seconds]}``, with :data:`TRANSACTIONS` (the batches'
        CPU outside their operations; its count: the batches)."""
        operations = {k: v for k, v in self.cpu.items() if k not in ("batch", CONTEXT_READ)}
        out: dict[str, list[float]] = {n: [self.count[n], self.cpu[n]] for n in operations}
        out[CONTEXT_READ] = [self.count[CONTEXT_READ], self.cpu[CONTEXT_READ]]
        out[TRANSACTIONS] = [self.count["batch"], self.cpu["batch"] - sum(operations.values())]
        return out


def operation_name(op: Any) -> str:
    """An operation as the report names it: its class (``Accept``, ``Finish``), or the
    function that built it (``OutboundStore.update``)."""
    name: str = getattr(op, "__qualname__", None) or type(op).__name__
    return name.split(".<locals>")[0]
