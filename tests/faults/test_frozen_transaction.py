"""A process frozen (SIGSTOP) inside a PostgreSQL write transaction, holding a row lock:
the server ends its transaction after botkit's idle-transaction timeout, so the other
processes that need the row go on, and the frozen one's write, when it wakes, is not
committed (its transaction was rolled back, and it is told so)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from botkit._faults import ENV
from botkit.store.engine import Database
from botkit.testing import run_bot
from tests.faults._process import wait_until

ROOT = Path(__file__).resolve().parents[2]
IDLE_TIMEOUT = 2.0  # the frozen process's idle_transaction_timeout, seconds

_WRITER = """
import asyncio, sys
from sqlalchemy import text
from botkit.store.engine import Database

async def main() -> None:
    db = Database(sys.argv[1], idle_transaction_timeout=float(sys.argv[2]))
    try:
        await db.write(lambda c: c.execute(text("UPDATE counter SET n = n + 100")))
    except Exception as exc:
        print("write failed:", type(exc).__name__, flush=True)
        sys.exit(3)
    finally:
        await db.close()
    print("write committed", flush=True)

asyncio.run(main())
"""


def _stopped(pid: int) -> bool:
    """Whether the process is stopped by a signal (state ``T`` in /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def _add_one(conn: Connection) -> None:
    conn.execute(text("UPDATE counter SET n = n + 1"))


def _count(conn: Connection) -> int:
    return int(conn.execute(text("SELECT n FROM counter")).scalar_one())


async def test_a_process_frozen_mid_transaction_holds_its_row_locks_no_longer_than_the_timeout(
    postgres_url: str,
) -> None:
    database = Database(postgres_url)
    try:
        await database.write(lambda c: c.execute(text("CREATE TABLE counter (n int)")))
        await database.write(lambda c: c.execute(text("INSERT INTO counter VALUES (0)")))
        frozen = await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", _WRITER, postgres_url, str(IDLE_TIMEOUT)),
            env={**os.environ, ENV: "pg-commit:1:stop", "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            await wait_until(
                lambda: _stopped(frozen.pid) or frozen.returncode is not None,
                within=60,
                what="the writer to freeze with its update not committed",
            )
            assert frozen.returncode is None, (await frozen.communicate())[0].decode()

            # the row is locked by the frozen transaction: this update waits for the
            # server to end it (without the timeout: for as long as it stays frozen)
            await asyncio.wait_for(database.write(_add_one), timeout=60)
            assert await database.read(_count) == 1

            frozen.send_signal(signal.SIGCONT)
            output, _ = await asyncio.wait_for(frozen.communicate(), timeout=60)
            exit_code = await frozen.wait()
        finally:
            if frozen.returncode is None:
                frozen.kill()
                await frozen.wait()
        assert exit_code == 3, output.decode()
        assert "write failed" in output.decode()
        assert await database.read(_count) == 1  # its +100 was rolled back, not applied
    finally:
        await database.close()


@pytest.mark.parametrize(("lease", "shown"), [(2.0, "5s"), (45.0, "45s")])
async def test_a_bot_s_sessions_end_an_idle_transaction_once_its_claims_would_have_lapsed(
    postgres_url: str, lease: float, shown: str
) -> None:
    """The bot's own sessions carry the timeout: its claim lease, at least 5 s."""
    config = {"bot": {"claim_lease": lease}}
    async with run_bot(database_url=postgres_url, config=config) as bot:
        setting = await bot.bot.database.read(
            lambda c: c.execute(text("SHOW idle_in_transaction_session_timeout")).scalar_one()
        )
    assert setting == shown
