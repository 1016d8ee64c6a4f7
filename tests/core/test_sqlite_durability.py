"""SQLite is durable by default (``synchronous=FULL``) and serves one bot process per file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import ProgrammingError

from botkit.config import parse_config
from botkit.exceptions import ConfigError, StoreError
from botkit.store import Database, one_process_per_sqlite_file
from botkit.store._process_lock import lock_path

SQLITE_SYNCHRONOUS = {0: "off", 1: "normal", 2: "full", 3: "extra"}


async def _synchronous(database: Database) -> str:
    level = await database.read(lambda conn: conn.exec_driver_sql("PRAGMA synchronous").scalar())
    assert isinstance(level, int)
    return SQLITE_SYNCHRONOUS[level]


async def test_sqlite_commits_with_synchronous_full_by_default(tmp_path: Path) -> None:
    config = parse_config({"database": {"url": f"sqlite:///{tmp_path / 'a.db'}"}}, environ={})
    assert config.database.synchronous == "full"
    database = Database(config.database.url)
    try:
        assert await _synchronous(database) == "full"
        # every connection of the pool, not only the first: the writer's is what matters
        write = await database.write(
            lambda conn: conn.exec_driver_sql("PRAGMA synchronous").scalar()
        )
        assert write == 2
    finally:
        await database.close()


@pytest.mark.parametrize("where", ["write", "read"])
async def test_a_thread_s_connection_that_broke_is_replaced_and_work_goes_on(
    tmp_path: Path, where: str
) -> None:
    """Each database thread keeps its connection between batches; one that breaks under
    an operation fails that operation only, and the thread's next batch opens another."""
    database = Database(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        await database.write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (n int)"))

        def break_it(conn: Connection) -> None:
            conn.connection.driver_connection.close()  # type: ignore[union-attr]
            conn.exec_driver_sql("SELECT 1")

        run = database.write if where == "write" else database.read
        with pytest.raises(ProgrammingError, match="closed database"):
            await run(break_it)
        for _ in range(3):
            await database.write(lambda conn: conn.exec_driver_sql("INSERT INTO t VALUES (1)"))
        counted = [
            await database.read(
                lambda conn: conn.exec_driver_sql("SELECT count(*) FROM t").scalar()
            )
            for _ in range(4)  # every reader thread, the one whose connection broke too
        ]
        assert counted == [3, 3, 3, 3]
    finally:
        await database.close()


async def test_synchronous_normal_is_an_option_of_the_database_table(tmp_path: Path) -> None:
    tables = {"database": {"url": f"sqlite:///{tmp_path / 'a.db'}", "synchronous": "normal"}}
    config = parse_config(tables, environ={})
    database = Database(config.database.url, synchronous=config.database.synchronous)
    try:
        assert await _synchronous(database) == "normal"
    finally:
        await database.close()


@pytest.mark.parametrize("value", ["off", "FULL ", 2, True])
def test_a_bad_synchronous_value_is_a_config_error_naming_the_key(value: object) -> None:
    with pytest.raises(ConfigError, match=r"database\.synchronous") as caught:
        parse_config({"database": {"synchronous": value}}, environ={})
    assert "'full'" in str(caught.value)
    assert "'normal'" in str(caught.value)


def test_database_refuses_an_unknown_synchronous_level_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"database\.synchronous"):
        Database(f"sqlite:///{tmp_path / 'a.db'}", synchronous="off")  # type: ignore[arg-type]


def test_a_second_holder_of_one_sqlite_file_is_refused_until_the_first_lets_go(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    with one_process_per_sqlite_file(url):
        with (
            pytest.raises(StoreError, match="use PostgreSQL to run several") as caught,
            one_process_per_sqlite_file(f"sqlite+pysqlite:///{tmp_path / '.' / 'bot.db'}"),
        ):
            pass  # pragma: no cover - the lock is held
        assert f"pid {os.getpid()}" in str(caught.value)
        assert "\n" not in str(caught.value)
        with one_process_per_sqlite_file(f"sqlite:///{tmp_path / 'other.db'}"):
            pass  # another file is another lock
    with one_process_per_sqlite_file(url):
        pass


def test_only_sqlite_files_are_locked() -> None:
    assert lock_path("postgresql://u@127.0.0.1/db") is None
    assert lock_path("sqlite://") is None
    assert lock_path("sqlite:///:memory:") is None
    path = lock_path("sqlite:///some/bot.db")
    assert path is not None
    assert path.name == "bot.db.lock"
    assert path.is_absolute()


def _env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTKIT_", "OPENAI_"))}
    env["BOTKIT_DATABASE_URL"] = f"sqlite:///{db}"
    return env


def _botkit(cwd: Path, db: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botkit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(db),
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_a_second_botkit_run_on_one_sqlite_file_is_refused_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    for folder in (first_dir, second_dir):
        folder.mkdir()
        (folder / "botkit.toml").write_text(
            "[adapters.console]\n[web]\nenabled = true\nport = 0\n"
        )
    first = subprocess.Popen(
        [sys.executable, "-m", "botkit", "run"],
        stdin=subprocess.PIPE,  # open but silent: the console waits for input
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=first_dir,
        env=_env(db),
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        log = ""
        assert first.stderr is not None
        while "web server listening" not in log and time.monotonic() < deadline:
            line = first.stderr.readline()
            if not line and first.poll() is not None:
                break
            log += line
        assert "web server listening" in log, log

        second = _botkit(second_dir, db, "run")
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"botkit: the SQLite database {db} is in use by another botkit process "
            f"(pid {first.pid}); SQLite serves one process: use PostgreSQL to run several"
        ]
        chat = _botkit(second_dir, db, "chat", stdin="hello\n")
        assert chat.returncode == 1
        assert "use PostgreSQL" in chat.stderr
        assert "Traceback" not in chat.stderr
        # maintenance next to a running bot is SQLite's locking's business, not refused
        upgraded = _botkit(second_dir, db, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr

        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        for stream in (first.stdin, first.stderr):
            if stream is not None:
                stream.close()
    # the first one is gone: the file is free again
    after = _botkit(second_dir, db, "chat", stdin="hello\n")
    assert after.returncode == 0, after.stderr
    assert "You said: hello" in after.stdout
