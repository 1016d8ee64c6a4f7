"""Scenario 6: the overhead scenario through a peer framework, opsdroid.

opsdroid is installed from PyPI into a venv of its own (kept in a cache folder, so later
runs reuse it: ``$BOTKIT_BENCH_CACHE``, else ``~/.cache/botkit-bench``), and driven
offline in a separate process by ``bench/_opsdroid_app.py``: an in-memory connector and
a chat skill that keeps history in opsdroid's memory (its SQLite database) and calls the
same fake model. The minimal hand-written pipeline (SQLite) runs in this process in the
same run, as the baseline. opsdroid stores no inbox and no outbox: it does less durable
work per message than either botkit or the minimal pipeline.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench._pipelines import MinimalPipeline
from bench._util import ROOT, ModelServer, Options, Skipped, ms, percentile, sqlite_url
from bench.overhead import USERS, latency_phase, sizes, throughput_phase

OPSDROID = "opsdroid==0.31.0"
# opsdroid 0.31 imports pkg_resources (gone from setuptools 81) and needs aiosqlite for
# its SQLite memory without declaring it
EXTRAS = ("setuptools<81", "aiosqlite")
INSTALL_TIMEOUT = 600.0


def _cache() -> Path:
    base = os.environ.get("BOTKIT_BENCH_CACHE") or str(Path.home() / ".cache" / "botkit-bench")
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    return Path(base) / f"{OPSDROID.replace('==', '-')}-{version}"


async def _command(*args: str, limit: float) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(limit):
            out, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, f"timed out after {limit:.0f} s"
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def peer_python() -> tuple[Path, str]:
    """The peer venv's interpreter, made on first use; and whether it was reused."""
    venv = _cache()
    python = venv / "bin" / "python"
    marker = venv / ".complete"
    if marker.exists() and python.exists():
        return python, "venv reused"
    started = time.monotonic()
    code, out = await _command(sys.executable, "-m", "venv", "--clear", str(venv), limit=120)
    if code != 0:
        raise Skipped(f"could not make a venv for opsdroid: {out.strip()[-200:]}")
    code, out = await _command(
        str(python),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        OPSDROID,
        *EXTRAS,
        limit=INSTALL_TIMEOUT,
    )
    if code != 0:
        last = [line for line in out.splitlines() if line.strip()][-1:] or ["?"]
        raise Skipped(f"could not install {OPSDROID} from PyPI: {last[0][:200]}")
    marker.write_text(OPSDROID + "\n")
    return python, f"venv built in {time.monotonic() - started:.0f} s"


async def _opsdroid(python: Path, model_url: str, opts: Options) -> dict[str, Any]:
    size = sizes(opts.quick)
    workdir = opts.workdir / "opsdroid"
    workdir.mkdir(exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        str(python),
        "-W",
        "ignore",
        str(ROOT / "bench" / "_opsdroid_app.py"),
        model_url,
        str(workdir),
        str(size.latency * size.rounds),
        str(USERS),
        str(size.per_user),
        str(size.warmup),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "XDG_DATA_HOME": str(workdir), "PYTHONPATH": ""},
    )
    async with asyncio.timeout(600):
        out, err = await process.communicate()
    if process.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise Skipped(f"opsdroid could not be driven offline: {tail[0][:200]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def run_opsdroid(opts: Options) -> str:
    """``peers/opsdroid``: opsdroid against the minimal pipeline, same run."""
    python, how = await peer_python()
    size = sizes(opts.quick)
    async with ModelServer() as model:
        minimal = MinimalPipeline(sqlite_url(opts.workdir, "peer-minimal"), model.url)
        await minimal.start()
        try:
            await latency_phase(minimal, "warm", size.warmup)
            latencies = await latency_phase(minimal, "lat", size.latency * size.rounds)
            rate, _ = await throughput_phase(minimal, "thr", USERS, size.per_user)
        finally:
            await minimal.close()
        peer = await _opsdroid(python, model.url, opts)
    p50, m50 = percentile(peer["latencies"], 50), percentile(latencies, 50)
    p99, m99 = percentile(peer["latencies"], 99), percentile(latencies, 99)
    return (
        f"opsdroid 0.31.0 p50 {ms(p50 - m50)} over minimal ({ms(p50)} vs {ms(m50)})  "
        f"p99 {ms(p99)} vs {ms(m99)}  throughput {peer['rate'] / rate:.2f}x minimal "
        f"({peer['rate']:.0f} vs {rate:.0f} msg/s)  "
        f"[opsdroid keeps history in its SQLite memory, no inbox/outbox; {how}]"
    )
