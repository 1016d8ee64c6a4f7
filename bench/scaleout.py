"""Scale-out: 1, 2 and 4 botkit processes sharing one PostgreSQL, and the database's own
CPU per message.

The peers' workload (``bench/peers.py``: users in a closed loop, the instant model, every
botkit default) split over N worker processes of ``bench/_peer_worker.py`` on one fresh
PostgreSQL database per N, each worker with its share of the users. The workers warm up,
say ``ready``, and start the measured phase together; the throughput is every worker's
measured messages over the longest worker's measured phase. Nothing is pinned: the
workers, the model server and PostgreSQL share this machine's cores, as they would.

The database's CPU is read from ``/proc/<pid>/stat`` (utime + stime) of the PostgreSQL
processes over the measured phase (:class:`ServerWatch`): the backends serving the
benchmark's database (from ``pg_stat_activity``, sampled, since a pool may open and
close connections as it goes), and the whole server through its postmaster (every
database, the WAL writer and checkpointer, anything else using this server, and the
backends that came and went). ``pg_stat_statements`` would give per-statement times,
but only when the server preloads it (``shared_preload_libraries``), which a shared
server may not; the process CPU needs nothing from the server, only the server on this
machine: else the line says the database's CPU is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from bench._closed_loop import Plan
from bench._pipelines import migrate
from bench._util import (
    ROOT,
    ModelServer,
    Options,
    Skipped,
    _admin_connect,
    postgres_database,
    postgres_reachable,
    pythonpath,
)

WORKERS = (1, 2, 4)
SAMPLE_EVERY = 0.1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def sizes(quick: bool) -> Plan:
    """Every worker together: the peers' sizes, or a smoke run's."""
    return Plan(8, 16, 80, 0) if quick else Plan(100, 1_000, 10_000, 0)


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after ``pid (comm)``, or ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def process_cpu(pid: int, *, children: bool = False) -> float | None:
    """A process's CPU seconds so far (user and system; with ``children``, those of its
    children it has reaped too), or ``None`` if it is not on this machine."""
    fields = _stat(pid)
    if fields is None:
        return None
    used = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        used += int(fields[13]) + int(fields[14])  # cutime, cstime
    return used / CLOCK_TICKS


def server_total(postmaster: int) -> float:
    """The CPU so far of the whole PostgreSQL server: the postmaster, its live children,
    and the children it has reaped (a backend that came and went counts)."""
    total = process_cpu(postmaster, children=True) or 0.0
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and fields[1] == str(postmaster):  # its ppid
            total += process_cpu(int(entry.name)) or 0.0
    return total


class ServerWatch:
    """The PostgreSQL processes' CPU over a stretch of time.

    The benchmark database's backends are sampled every ``SAMPLE_EVERY`` seconds (from
    ``pg_stat_activity``), since a connection pool may open and close connections while
    it runs; a backend that lives and dies between two samples is missed, one that dies
    loses at most its last interval. The whole server is counted through the
    postmaster, which includes every backend it reaped, of any database.
    """

    def __init__(self, admin_url: str, database: str) -> None:
        self.admin_url = admin_url
        self.database = database
        self.before: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.postmaster: int | None = None
        self.server_before = 0.0
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take the first reading and keep sampling."""
        self._conn = await _admin_connect(self.admin_url)
        await self._sample()
        self.before = dict(self.last)
        if self.postmaster is not None:
            self.server_before = server_total(self.postmaster)
        self._task = asyncio.create_task(self._keep_sampling())

    async def stop(self) -> tuple[float | None, float | None, int]:
        """CPU seconds of the database's backends and of the whole server since
        :meth:`start` (``None``: not on this machine), and how many backends served the
        database meanwhile."""
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._sample()
        await self._conn.close()
        if self.postmaster is None:
            return None, None, 0
        database = sum(cpu - self.before.get(pid, 0.0) for pid, cpu in self.last.items())
        server = server_total(self.postmaster) - self.server_before
        return database, server, len(self.last)

    async def _keep_sampling(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            await self._sample()

    async def _sample(self) -> None:
        rows = await self._conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1", self.database
        )
        for row in rows:
            pid = int(row["pid"])
            fields = _stat(pid)
            if fields is None:
                continue
            self.postmaster = int(fields[1])
            self.last[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def _workers(
    count: int, plan: Plan, model_url: str, database_url: str, workdir: Path
) -> list[asyncio.subprocess.Process]:
    processes = []
    for index in range(count):
        args = [sys.executable, "-m", "bench._peer_worker", "botkit", "--model", model_url]
        args += ["--workdir", str(workdir), "--database", database_url]
        args += ["--users", str(plan.users // count), "--warmup", str(plan.warmup // count)]
        args += ["--measured", str(plan.measured // count), "--latency", "0"]
        args += ["--tag", f"w{index}", "--start-on-stdin"]
        processes.append(
            await asyncio.create_subprocess_exec(
                *args,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": pythonpath()},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        )
    return processes


async def _line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(900):
        line = await process.stdout.readline()
    if not line:
        await process.wait()
        raise RuntimeError(f"a botkit worker ended with status {process.returncode}")
    return line.decode().strip()


async def _tell(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()


async def measure_workers(
    count: int, plan: Plan, model_url: str, admin_url: str, workdir: Path
) -> dict[str, Any]:
    """N workers on a fresh database; throughput, botkit's and the database's CPU."""
    from sqlalchemy.engine import make_url

    async with postgres_database(admin_url, f"scale{count}") as url:
        await migrate(url)
        name = make_url(url).database or ""
        processes = await _workers(count, plan, model_url, url, workdir)
        try:
            for process in processes:
                if await _line(process) != "ready":
                    raise RuntimeError("a botkit worker did not get ready")
            watch = ServerWatch(admin_url, name)
            await watch.start()
            await _tell(processes)
            results = [json.loads(await _line(p)) for p in processes]
            database, server, backends = await watch.stop()
            await _tell(processes)  # let them close
            for process in processes:
                async with asyncio.timeout(60):
                    await process.wait()
        finally:
            for process in processes:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
    messages = sum(r["messages"] for r in results)
    seconds = max(r["seconds"] for r in results)
    return {
        "workers": count,
        "rate": messages / seconds,
        "botkit_cpu_ms": 1000 * sum(r["cpu_seconds"] for r in results) / messages,
        "db_cpu_ms": None if database is None else 1000 * database / messages,
        "server_cpu_ms": None if server is None else 1000 * server / messages,
        "backends": backends,
    }


async def run(opts: Options) -> str:
    """``scaleout``: 1, 2 and 4 workers on one PostgreSQL."""
    why = await postgres_reachable(opts.postgres_url)
    if why is not None:
        raise Skipped(why)
    assert opts.postgres_url is not None
    plan = sizes(opts.quick)
    figures = []
    async with ModelServer() as model:
        for count in WORKERS:
            workdir = opts.workdir / f"scaleout-{count}"
            workdir.mkdir()
            figures.append(
                await measure_workers(count, plan, model.url, opts.postgres_url, workdir)
            )
    parts = []
    for f in figures:
        db = "database CPU unknown (the server is not on this machine)"
        if f["db_cpu_ms"] is not None:
            db = (
                f"database CPU between {f['db_cpu_ms']:.2f} (its {f['backends']} backends, "
                f"sampled) and {f['server_cpu_ms']:.2f} ms/msg (the whole server)"
            )
        parts.append(
            f"{f['workers']} worker(s) {f['rate']:,.0f} msg/s, botkit CPU "
            f"{f['botkit_cpu_ms']:.2f} ms/msg, {db}"
        )
    cores = os.cpu_count() or 1
    return (
        "  |  ".join(parts)
        + f"  [{plan.users} users, {plan.warmup:,} warm-up then {plan.measured:,} measured "
        f"messages split over the workers; every botkit default; {cores} CPUs shared by "
        "the workers, the model server and PostgreSQL]"
    )
