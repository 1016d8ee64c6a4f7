"""What every scenario shares: options, statistics, memory, databases, the model server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import statistics
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


class Skipped(Exception):
    """A scenario that could not run here; its message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Options:
    """How the run was asked for.

    Attributes:
        quick: a smoke run: small sizes, everything in under two minutes.
        postgres_url: an admin URL to create benchmark databases with; ``None``: none.
        workdir: a private temporary folder (SQLite files, the workers' folders).
        offline: never install a peer framework from PyPI: one not installed yet is
            skipped (the smoke test's way: no test may reach the internet).
        against: a git revision whose botkit the peers scenario also runs, side by
            side with this one (``--against``); ``None``: none.
        pairs: with ``against``, run only the two botkits, this many rounds each, one
            right after the other (``--pairs``); 0: every target, as usual.
    """

    quick: bool
    postgres_url: str | None
    workdir: Path
    offline: bool = False
    against: str | None = None
    pairs: int = 0


def importable(package: str) -> bool:
    """Whether ``package`` (``botkit_slack``...) imports, adding the repository's source
    roots to ``sys.path`` when an editable install made before it existed does not map it
    (as the adapters' test fixtures do)."""
    import importlib

    try:
        importlib.import_module(package)
    except ImportError:
        for root in (ROOT / "adapters", ROOT / "plugins"):
            if str(root) not in sys.path:
                sys.path.append(str(root))
        try:
            importlib.import_module(package)
        except ImportError:
            return False
    return True


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest rank."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def ms(seconds: float) -> str:
    """Seconds as milliseconds for a result line: ``1.23 ms``."""
    value = seconds * 1000
    if abs(value) >= 100:
        return f"{value:.0f} ms"
    if abs(value) >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux ``VmHWM``)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux ``VmRSS``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sqlite_url(workdir: Path, name: str) -> str:
    """A fresh SQLite database file in ``workdir``."""
    path = workdir / f"{name}-{uuid.uuid4().hex[:8]}.db"
    return f"sqlite+aiosqlite:///{path}"


async def postgres_reachable(admin_url: str | None) -> str | None:
    """Why PostgreSQL cannot be used, or ``None`` when it can."""
    if admin_url is None:
        return "no PostgreSQL URL (set BOTKIT_BENCH_POSTGRES_URL)"
    try:
        conn = await _admin_connect(admin_url)
    except Exception as exc:
        return f"PostgreSQL at {_safe(admin_url)} is not reachable ({type(exc).__name__})"
    await conn.close()
    return None


@contextlib.asynccontextmanager
async def postgres_database(admin_url: str, label: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database ``botkit_bench_<label>_<random>``, dropped afterwards."""
    from sqlalchemy.engine import make_url

    name = f"botkit_bench_{label}_{uuid.uuid4().hex[:8]}"
    conn = await _admin_connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        conn = await _admin_connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def _admin_connect(admin_url: str) -> Any:
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    return await asyncpg.connect(
        host=admin.host or "127.0.0.1",
        port=admin.port or 5432,
        user=admin.username,
        password=admin.password,
        database=admin.database,
        timeout=5,
    )


def pythonpath() -> str:
    """``PYTHONPATH`` for a child process that imports bench and botkit from this tree:
    the repository root ahead of the caller's path, not instead of it (the tests'
    network guard)."""
    return os.pathsep.join([str(ROOT), *_pythonpath()])


def cpus() -> tuple[int, int]:
    """(the CPU a target runs on, the CPU the model server runs on): the last and the
    first this process may use; the same one on a machine with one."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[-1], allowed[0]


def cpu_seconds() -> float:
    """This process's CPU time so far (user and system, all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pythonpath() -> list[str]:
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class ModelServer:
    """The fake OpenAI server (``tests/fakes/openai_server.py``) in its own process.

    A separate process, so that the framework and the baseline pay for their own work
    only, on a machine with few cores. Echoes by default; ``delay`` seconds before each
    answer; pinned to ``cpu`` if given.
    """

    def __init__(self, *, delay: float = 0.0, cpu: int | None = None) -> None:
        self.delay = delay
        self.cpu = cpu
        self.url = ""
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ModelServer:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench._model_server",
            "--delay",
            str(self.delay),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # ahead of the caller's path, not instead of it (the tests' network guard)
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(ROOT), *_pythonpath()]),
                **({"BOTKIT_BENCH_CPU": str(self.cpu)} if self.cpu is not None else {}),
            },
        )
        assert self._process.stdout is not None
        async with asyncio.timeout(30):
            line = await self._process.stdout.readline()
        if not line.startswith(b"http://"):
            await self.__aexit__()
            raise RuntimeError(f"the model server did not start: {line!r}")
        self.url = line.decode().strip()
        return self

    async def __aexit__(self, *exc: object) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        if process.stdin is not None:
            process.stdin.close()  # the server exits when its stdin closes
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
