"""Shared fixtures: databases (SQLite always, PostgreSQL when configured) and the network
guard (``tests/netguard``: a test that tries to leave the machine fails)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botkit.store import Database, Store

# the guard's folder is a source root of its own: subprocesses import it by name too
sys.path.insert(0, str(Path(__file__).resolve().parent / "netguard"))
pytest_plugins = ["tests.fakes.openai_server", "botkit_netguard", "pytester"]

POSTGRES_URL = os.environ.get("BOTKIT_TEST_POSTGRES_URL") or None
POSTGRES_OFF = (
    "PostgreSQL variant: BOTKIT_TEST_POSTGRES_URL is not set (scripts/test sets it, and "
    "fails without PostgreSQL unless BOTKIT_TEST_POSTGRES=off)"
)
# the PostgreSQL variants are always collected: without a server they show as skipped,
# with the reason, instead of vanishing from the count
BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.skipif(POSTGRES_URL is None, reason=POSTGRES_OFF)),
]


async def _create_postgres_database() -> str:
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    assert POSTGRES_URL is not None
    admin = make_url(POSTGRES_URL)
    name = f"botkit_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(
        host=admin.host,
        port=admin.port or 5432,
        user=admin.username,
        password=admin.password,
        database=admin.database,
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin.set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False
    )


async def _drop_postgres_database(url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    assert POSTGRES_URL is not None
    admin = make_url(POSTGRES_URL)
    name = make_url(url).database
    conn = await asyncpg.connect(
        host=admin.host,
        port=admin.port or 5432,
        user=admin.username,
        password=admin.password,
        database=admin.database,
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: SQLite in tmp_path, and PostgreSQL when configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bot.db'}"
        return
    url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(url)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated store on each backend."""
    database = Database(database_url)
    await database.upgrade()
    try:
        yield Store(database)
    finally:
        await database.close()
