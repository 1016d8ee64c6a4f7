"""The network guard as a pytest plugin: attempts to leave the machine fail the test.

The guard itself, and why it records rather than only raises, is ``netguard_core``. Here:
it is installed for the whole session, each test gets a log file of its own for the
subprocesses it starts, and at teardown the test fails with every attempt it (or they)
made. Attempts outside any test (collection, session fixtures) fail the run at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from netguard_core import LOG_VARIABLE, NetworkGuard, guarded_environ

__all__ = ["check", "failure_message", "read_log"]

# --- the pytest plugin ------------------------------------------------------------------


class _Recorder:
    """What this process's guard and the subprocesses' logs saw, per test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.session_log = folder / "session.log"
        self.attempts: list[str] = []  # of the test running now, or outside any test
        self.outside: list[str] = []
        self._lock = threading.Lock()
        self._count = 0

    def record(self, entry: str) -> None:
        self.attempts.append(entry)

    def new_log(self) -> Path:
        with self._lock:
            self._count += 1
            return self.folder / f"test-{self._count}.log"


def read_log(path: Path) -> list[str]:
    """The attempts a subprocess log holds (none if it was never written)."""
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


def failure_message(attempts: list[str]) -> str:
    """The teardown failure: every attempt, one per line."""
    lines = "\n".join(f"  - {a}" for a in attempts)
    return (
        f"this test tried to leave the machine {len(attempts)} time(s); tests must stay "
        f"on localhost (the attempts were blocked, but the code may have hidden the "
        f"error):\n{lines}"
    )


def check(attempts: list[str]) -> None:
    """Fail the current test if there were ``attempts``."""
    if attempts:
        pytest.fail(failure_message(attempts), pytrace=False)


_STATE = pytest.StashKey[tuple[NetworkGuard, "_Recorder", dict[str, str | None]]]()


def pytest_configure(config: pytest.Config) -> None:
    folder = Path(tempfile.mkdtemp(prefix="botkit-netguard-"))
    recorder = _Recorder(folder)
    guard = NetworkGuard(recorder.record)
    guard.install()
    saved = {key: os.environ.get(key) for key in (LOG_VARIABLE, "PYTHONPATH")}
    os.environ.update(guarded_environ(None, **{LOG_VARIABLE: str(recorder.session_log)}))
    config.stash[_STATE] = (guard, recorder, saved)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _STATE not in config.stash:
        return
    guard, recorder, saved = config.stash[_STATE]
    guard.uninstall()
    shutil.rmtree(recorder.folder, ignore_errors=True)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _STATE not in session.config.stash:
        return
    _, recorder, _ = session.config.stash[_STATE]
    outside = recorder.outside + recorder.attempts + read_log(recorder.session_log)
    if outside:
        print("\nnetwork guard: attempts to leave the machine outside any test:")
        for entry in outside:
            print(f"  - {entry}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _no_internet(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Fail the test, at teardown, if it or a subprocess it started tried to leave this
    machine (the attempts themselves are blocked as they happen)."""
    _, recorder, _ = request.config.stash[_STATE]
    recorder.outside += recorder.attempts  # between tests: nobody's
    recorder.attempts = []
    log = recorder.new_log()
    monkeypatch.setenv(LOG_VARIABLE, str(log))
    yield
    attempts, recorder.attempts = recorder.attempts, []
    check(attempts + read_log(log))
