"""A peer framework installed from PyPI into a venv of its own, kept in a cache folder.

``$BOTKIT_BENCH_CACHE``, else ``~/.cache/botkit-bench``: later runs reuse the venv. A
peer that cannot be installed (no network, no PyPI), or is not installed yet in a run
that may not install (``--offline``), is :class:`Skipped`, with the reason.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench._util import Skipped

INSTALL_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class Peer:
    """A framework to compare with: its pinned requirement, and what it needs beside."""

    requirement: str  # "opsdroid==0.31.0"
    extras: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``opsdroid 0.31.0``."""
        return self.requirement.replace("==", " ")


# opsdroid 0.31 imports pkg_resources (gone from setuptools 81) and needs aiosqlite for
# its SQLite memory without declaring it
OPSDROID = Peer("opsdroid==0.31.0", ("setuptools<81", "aiosqlite"))
ERRBOT = Peer("errbot==6.2.1")


def _cache(peer: Peer) -> Path:
    base = os.environ.get("BOTKIT_BENCH_CACHE") or str(Path.home() / ".cache" / "botkit-bench")
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    return Path(base) / f"{peer.requirement.replace('==', '-')}-{version}"


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


PEERS = (ERRBOT, OPSDROID)


async def peer_python(peer: Peer, *, install: bool = True) -> tuple[Path, str]:
    """The peer venv's interpreter, made on first use unless ``install`` is false; and
    whether it was reused."""
    venv = _cache(peer)
    python = venv / "bin" / "python"
    marker = venv / ".complete"
    if marker.exists() and python.exists():
        return python, "venv reused"
    if not install:
        raise Skipped(
            f"{peer.label} is not installed in {venv.parent} and this run may not install "
            "it (--offline); `python -m bench --install-peers` installs it"
        )
    started = time.monotonic()
    code, out = await _command(sys.executable, "-m", "venv", "--clear", str(venv), limit=120)
    if code != 0:
        raise Skipped(f"could not make a venv for {peer.label}: {out.strip()[-200:]}")
    code, out = await _command(
        str(python),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        peer.requirement,
        *peer.extras,
        limit=INSTALL_TIMEOUT,
    )
    if code != 0:
        last = [line for line in out.splitlines() if line.strip()][-1:] or ["?"]
        raise Skipped(f"could not install {peer.requirement} from PyPI: {last[0][:200]}")
    marker.write_text(peer.requirement + "\n")
    return python, f"venv built in {time.monotonic() - started:.0f} s"
