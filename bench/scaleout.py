"""Scale-out: 1, 2 and 4 botkit processes sharing one PostgreSQL, and the database's own
CPU per message.

The peers' workload (``bench/peers.py``: users in a closed loop, the instant model, every
botkit default) split over N worker processes of ``bench/_peer_worker.py`` on one fresh
PostgreSQL database per N, each worker with its share of the users. The workers warm up,
say ``ready``, and start the measured phase together; the throughput is every worker's
measured messages over the longest worker's measured phase. Nothing is pinned: the
workers, the model server and PostgreSQL share this machine's cores, as they would.

The database's CPU is read from ``/proc/<pid>/stat`` (utime + stime) of the PostgreSQL
processes, before and after the measured phase: the backends serving the benchmark's
database (from ``pg_stat_activity``), and apart from them the server-wide writers (WAL
writer, checkpointer, background writer), which also serve anything else using this
server. ``pg_stat_statements`` would give per-statement times, but only when the
server preloads it (``shared_preload_libraries``), which a shared server may not; the
process CPU needs nothing from the server. It needs the server on this machine: else
the line says the database's CPU is unknown.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
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
SERVER_WIDE = ("walwriter", "checkpointer", "background writer")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def sizes(quick: bool) -> Plan:
    """Every worker together: the peers' sizes, or a smoke run's."""
    return Plan(8, 16, 80, 0) if quick else Plan(100, 1_000, 10_000, 0)


def process_cpu(pid: int) -> float | None:
    """A process's CPU seconds so far (user and system), or ``None`` if it is not here."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class ServerCpu:
    """CPU seconds of the database's backends and of the server-wide writers, by pid."""

    backends: dict[int, float]
    writers: dict[int, float]


async def server_cpu(admin_url: str, database: str) -> ServerCpu:
    """The CPU so far of every PostgreSQL process that serves ``database``, and of the
    server-wide writers."""
    conn = await _admin_connect(admin_url)
    try:
        rows = await conn.fetch(
            "SELECT pid, datname, backend_type FROM pg_stat_activity "
            "WHERE datname = $1 OR backend_type = ANY($2::text[])",
            database,
            list(SERVER_WIDE),
        )
    finally:
        await conn.close()
    backends: dict[int, float] = {}
    writers: dict[int, float] = {}
    for row in rows:
        cpu = process_cpu(int(row["pid"]))
        if cpu is not None:
            (backends if row["datname"] == database else writers)[int(row["pid"])] = cpu
    return ServerCpu(backends, writers)


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two readings; a process that started in between counts whole."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


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
            before = await server_cpu(admin_url, name)
            await _tell(processes)
            results = [json.loads(await _line(p)) for p in processes]
            after = await server_cpu(admin_url, name)
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
    known = bool(before.backends or after.backends)
    return {
        "workers": count,
        "rate": messages / seconds,
        "botkit_cpu_ms": 1000 * sum(r["cpu_seconds"] for r in results) / messages,
        "db_cpu_ms": 1000 * _spent(before.backends, after.backends) / messages if known else None,
        "writers_cpu_ms": 1000 * _spent(before.writers, after.writers) / messages,
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
        db = "unknown (server not on this machine)"
        if f["db_cpu_ms"] is not None:
            db = f"{f['db_cpu_ms']:.2f}"
        parts.append(
            f"{f['workers']} worker(s) {f['rate']:,.0f} msg/s, botkit CPU "
            f"{f['botkit_cpu_ms']:.2f} ms/msg, database CPU {db} ms/msg "
            f"(+ server-wide writers {f['writers_cpu_ms']:.2f})"
        )
    cores = os.cpu_count() or 1
    return (
        "  |  ".join(parts)
        + f"  [{plan.users} users, {plan.warmup:,} warm-up then {plan.measured:,} measured "
        f"messages split over the workers; every botkit default; {cores} CPUs shared by "
        "the workers, the model server and PostgreSQL]"
    )
