"""The garbage-collector tuning a bot process gets from ``run_until_stopped``."""

from __future__ import annotations

import asyncio
import gc
import io
from collections.abc import Iterator

import pytest

from botkit import tune_gc
from botkit_console import ConsoleAdapter
from tests.fakes.bots import make_bot


@pytest.fixture
def collector() -> Iterator[None]:
    """Give the test process its collector back as it was."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class _Loaded:
    """Something start-up made."""


def _tracked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


@pytest.mark.usefixtures("collector")
def test_what_was_alive_is_frozen_and_young_objects_are_collected_less_often() -> None:
    _, middle, old = gc.get_threshold()
    loaded = _Loaded()
    assert _tracked(loaded)
    tune_gc(12_345)
    assert gc.get_threshold() == (12_345, middle, old)
    assert not _tracked(loaded)  # out of every later collection
    assert gc.get_freeze_count() > 0
    made_later = _Loaded()
    assert _tracked(made_later)  # collected as before


@pytest.mark.usefixtures("collector")
def test_a_young_threshold_below_one_is_refused() -> None:
    before = gc.get_threshold()
    with pytest.raises(ValueError, match="at least 1"):
        tune_gc(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("collector")
@pytest.mark.parametrize("tuned", [True, False])
async def test_run_until_stopped_tunes_the_collector_unless_told_not_to(
    database_url: str, tuned: bool
) -> None:
    gc.set_threshold(700, 10, 10)
    console = ConsoleAdapter("console", stdin=io.StringIO(""), stdout=io.StringIO())
    async with make_bot(database_url, {"console": console}, bot={"tune_gc": tuned}) as bot:
        await asyncio.wait_for(bot.run_until_stopped(), 20)
    if tuned:
        assert gc.get_threshold()[0] == 20_000
        assert gc.get_freeze_count() > 0
    else:
        assert gc.get_threshold() == (700, 10, 10)
        assert gc.get_freeze_count() == 0
