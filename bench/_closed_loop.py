"""The peers' closed loop and what a target process measures of itself; stdlib only.

Imported by every peers target: botkit's worker (``bench/_peer_worker.py``) and the
peer frameworks' drivers, which run in venvs of their own without botkit installed
(``bench/_opsdroid_app.py``, ``bench/_errbot_app.py``). Each target process pins itself
to the CPU it is given before it starts a thread, runs the warm-up, then the measured
phase (its own CPU time over that phase, from ``getrusage``), then one user alone for
latency, and prints one JSON object (:func:`report`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# one message: (conversation, text, external id) -> seconds until its reply was delivered
Send = Callable[[str, str, str], Awaitable[float]]


@dataclass(frozen=True, slots=True)
class Plan:
    """How much a target sends: ``warmup`` then ``measured`` messages over ``users``
    conversations in a closed loop (each user sends its next message once the last one
    was answered), then ``latency`` messages from one user alone."""

    users: int
    warmup: int
    measured: int
    latency: int

    @property
    def per_user(self) -> tuple[int, int]:
        """Messages each user sends in the warm-up and in the measured phase."""
        return max(1, self.warmup // self.users), max(1, self.measured // self.users)

    def argv(self) -> list[str]:
        """The plan as command-line arguments (:meth:`parse` reads them back)."""
        return [str(self.users), str(self.warmup), str(self.measured), str(self.latency)]

    @classmethod
    def parse(cls, args: list[str]) -> Plan:
        """A plan from :meth:`argv`'s four numbers."""
        users, warmup, measured, latency = (int(a) for a in args[:4])
        return cls(users, warmup, measured, latency)


@dataclass(frozen=True, slots=True)
class Measured:
    """What a target reports about itself."""

    messages: int  # answered in the measured phase
    seconds: float  # the measured phase's wall time
    cpu_seconds: float  # this process's CPU time (all threads) over the measured phase
    peak_rss_mib: float  # the process's peak resident memory (VmHWM), start-up included
    latencies: list[float]  # one user alone, seconds per message
    affinity: list[int]  # the CPUs the process ran on
    # CPU seconds over the measured phase by thread name (pool threads' numbers dropped)
    threads: dict[str, float] = field(default_factory=dict)


def text(n: int) -> str:
    """The n-th message, the same for every target."""
    return f"Message {n}: what would you pack for three days of hiking in the Alps in May?"


def pin() -> None:
    """Pin this process to ``$BOTKIT_BENCH_CPU`` (if set); call before any thread starts,
    so every thread it makes inherits the mask."""
    cpu = os.environ.get("BOTKIT_BENCH_CPU")
    if cpu:
        os.sched_setaffinity(0, {int(cpu)})


def cpu_seconds() -> float:
    """This process's CPU time so far, user and system, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu() -> dict[str, float]:
    """Each Python thread's CPU time so far (its own CPU clock), summed by name without
    a pool's number (``botkit-db-read_0`` and ``_1`` are ``botkit-db-read``)."""
    seconds: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            used = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (AttributeError, OSError):  # not Linux, or the thread ended meanwhile
            continue
        name = re.sub(r"_\d+$", "", thread.name)
        seconds[name] = seconds.get(name, 0.0) + used
    return seconds


def peak_rss_mib() -> float:
    """This process's peak resident memory, in MiB (Linux ``VmHWM``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(
    send: Send,
    plan: Plan,
    *,
    tag: str = "peers",
    gate: Callable[[], Awaitable[None]] | None = None,
    measuring: Callable[[bool], None] | None = None,
) -> Measured:
    """The warm-up, the measured phase and the latency phase through ``send``;
    ``gate``, if given, is awaited between the warm-up and the measured phase;
    ``measuring``, if given, is told when the measured phase starts (True) and ends."""
    counter = iter(range(1, 1 << 62))
    warm_each, measured_each = plan.per_user

    async def user(index: int, count: int) -> None:
        conversation = f"{tag}-user-{index}"
        for _ in range(count):
            n = next(counter)
            await send(conversation, text(n), f"{tag}-m{n}")

    await asyncio.gather(*(user(i, warm_each) for i in range(plan.users)))
    if gate is not None:
        await gate()
    if measuring is not None:
        measuring(True)
    cpu, started, by_thread = cpu_seconds(), time.monotonic(), thread_cpu()
    await asyncio.gather(*(user(i, measured_each) for i in range(plan.users)))
    seconds, cpu = time.monotonic() - started, cpu_seconds() - cpu
    if measuring is not None:
        measuring(False)
    threads = {name: used - by_thread.get(name, 0.0) for name, used in thread_cpu().items()}
    latencies = []
    for _ in range(plan.latency):
        n = next(counter)
        latencies.append(await send(f"{tag}-alone", text(n), f"{tag}-m{n}"))
    return Measured(
        messages=plan.users * measured_each,
        seconds=seconds,
        cpu_seconds=cpu,
        peak_rss_mib=peak_rss_mib(),
        latencies=latencies,
        affinity=sorted(os.sched_getaffinity(0)),
        threads=threads,
    )


def report(measured: Measured, **extra: Any) -> None:
    """Print ``measured`` as the one JSON line the harness reads."""
    sys.stdout.write(json.dumps({**asdict(measured), **extra}) + "\n")
    sys.stdout.flush()
