"""Bot processes for the fault scenarios: start, kill, freeze, resume, stop, and waiting
on a condition with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

__all__ = ["BotProcess", "free_port", "wait_until"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until(
    condition: Callable[[], bool] | Callable[[], Awaitable[bool]],
    *,
    within: float = 30.0,
    what: str = "the condition",
    watch: Sequence[BotProcess] = (),
    interval: float = 0.05,
    explain: Callable[[], str] | None = None,
) -> None:
    """Wait until ``condition()`` holds; fail after ``within`` seconds.

    Args:
        condition: checked every ``interval`` seconds; may be a coroutine function.
        within: the deadline, in seconds.
        what: named in the failure.
        watch: bots that must stay alive meanwhile (one that exits fails at once, with its
            log); a bot stopped on purpose should not be watched.
        interval: seconds between checks.
        explain: what the failure should say about the state reached (what is missing).
    """
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        for bot in watch:
            if bot.exited:
                raise AssertionError(
                    f"{bot.name} exited ({bot.returncode}) while waiting for {what}:\n"
                    f"{bot.log_tail()}"
                )
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {b.name}\n{b.log_tail(2000)}" for b in watch)
            state = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {within:g} s waiting for {what}{state}\n{logs}")
        await asyncio.sleep(interval)


@dataclass
class BotProcess:
    """One ``botkit run`` subprocess; its output goes to ``<name>.log`` beside its config."""

    name: str
    config: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    signals: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The bot's web server: ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where its stdout and stderr go (appended across restarts)."""
        return self.config.with_suffix(".log")

    def start(self) -> BotProcess:
        """Start (or restart) the process."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"===== start {self.starts} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "botkit", "-c", str(self.config), "run"],
                cwd=self.config.parent,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the test run does not reach it
            )
        return self

    @property
    def pid(self) -> int:
        """The running process's id."""
        assert self.process is not None
        return self.process.pid

    @property
    def exited(self) -> bool:
        """Whether it was started and has ended."""
        return self.process is not None and self.process.poll() is not None

    @property
    def running(self) -> bool:
        """Whether it is running (stopped with SIGSTOP counts as running)."""
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """Its exit status, once ended (negative: killed by that signal)."""
        return None if self.process is None else self.process.poll()

    @property
    def stopped(self) -> bool:
        """Whether it is stopped (SIGSTOP, sent by a test or by itself at a fault point)."""
        if not self.running:
            return False
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "T"

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.signals.append(sig.name)
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        self._signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the process freezes, its sockets stay open."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        self._signal(signal.SIGCONT)

    def terminate(self) -> None:
        """SIGTERM: botkit's graceful stop."""
        self._signal(signal.SIGTERM)

    async def wait_exit(self, within: float = 30.0) -> int:
        """Wait for the process to end; its exit status."""
        await wait_until(lambda: self.exited, within=within, what=f"{self.name} to exit")
        code = self.returncode
        assert code is not None
        return code

    async def wait_ready(self, path: str = "/healthz", within: float = 30.0) -> None:
        """Wait until its web server answers ``path`` with 200."""

        async def answers() -> bool:
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(self.url + path, timeout=aiohttp.ClientTimeout(total=2)) as r,
                ):
                    return r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        await wait_until(answers, within=within, what=f"{self.name} to be ready", watch=[self])

    def log_text(self) -> str:
        """Everything it logged, across restarts."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 4000) -> str:
        """The end of its log."""
        return self.log_text()[-chars:]

    def cleanup(self) -> None:
        """Make sure it is not left running (nor stopped)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.kill()
            self.process.wait(timeout=10)
