"""Fixtures of the fault-injection suite: the fakes, a cluster of bots, the databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import POSTGRES_URL, _create_postgres_database, _drop_postgres_database
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.faults.harness import Cluster

#: per-test timeout of a scenario that sets none: processes start, die and restart
SCENARIO_TIMEOUT = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is a ``faults`` test, with a scenario's timeout."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(SCENARIO_TIMEOUT))


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """The model, Slack and Telegram fakes, and the bots a scenario starts (killed after)."""
    async with (
        FakeOpenAI() as openai,
        FakeSlack() as slack,
        FakeTelegramAPI() as telegram,
        aiohttp.ClientSession() as session,
    ):
        cluster = Cluster(tmp_path, openai, slack, telegram, session)
        try:
            yield cluster
        finally:
            cluster.cleanup()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database; the scenario is skipped without BOTKIT_TEST_POSTGRES_URL."""
    if POSTGRES_URL is None:
        pytest.skip("needs PostgreSQL: set BOTKIT_TEST_POSTGRES_URL")
    url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file in ``tmp_path``."""
    return f"sqlite:///{tmp_path / 'bot.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each backend in turn, for scenarios one process can play: SQLite, then PostgreSQL
    (skipped without BOTKIT_TEST_POSTGRES_URL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bot.db'}"
        return
    if POSTGRES_URL is None:
        pytest.skip("needs PostgreSQL: set BOTKIT_TEST_POSTGRES_URL")
    url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(url)
