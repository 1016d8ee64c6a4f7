"""The garbage-collector tuning a bot process gets from ``run_until_stopped``."""

from __future__ import annotations

import asyncio
import gc
import io
import weakref
from collections.abc import Iterator

import pytest

from botkit import restore_gc, tune_gc
from botkit.testing import run_bot
from botkit_console import ConsoleAdapter


@pytest.fixture
def collector() -> Iterator[None]:
    """Give the test process its collector back as it was."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class _Loaded:
    """Something start-up made."""


def _tracked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


@pytest.mark.usefixtures("collector")
def test_what_was_alive_is_frozen_until_restored_and_young_objects_wait_longer() -> None:
    gc.set_threshold(700, 10, 10)
    loaded = _Loaded()
    previous = tune_gc(12_345)
    assert previous is not None
    assert gc.get_threshold() == (12_345, 10, 10)
    assert not _tracked(loaded)  # out of every later collection
    assert _tracked(_Loaded())  # made later: collected as before
    restore_gc(previous)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
    assert _tracked(loaded)


# frozen objects that other threads (servers of earlier tests) free while a test runs
_SLACK = 1_000


@pytest.mark.usefixtures("collector")
def test_a_freeze_or_a_higher_threshold_someone_else_set_is_kept() -> None:
    gc.set_threshold(50_000, 10, 10)
    gc.freeze()  # the host application froze its own heap
    frozen = gc.get_freeze_count()
    previous = tune_gc()
    assert previous is not None
    assert gc.get_threshold() == (50_000, 10, 10)
    restore_gc(previous)
    # still the host's to thaw (not 0; frozen objects other threads free meanwhile may
    # leave it a few lower)
    assert frozen - _SLACK <= gc.get_freeze_count() <= frozen


@pytest.mark.usefixtures("collector")
def test_a_disabled_collector_is_left_alone_and_a_bad_threshold_refused() -> None:
    before = gc.get_threshold()
    with pytest.raises(ValueError, match="at least 1"):
        tune_gc(0)
    gc.disable()
    assert tune_gc() is None
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


async def _run_and_stop(database_url: str, *, tuned: bool) -> weakref.ref[object]:
    console = ConsoleAdapter("console", stdin=io.StringIO(""), stdout=io.StringIO())
    bot = run_bot(
        database_url=database_url,
        channels=[console],
        model="config",
        config={"bot": {"tune_gc": tuned}},
    ).bot
    async with bot:
        await asyncio.wait_for(bot.run_until_stopped(), 20)
        during = (gc.get_threshold(), gc.get_freeze_count())
        bot.tune_collector()  # again: changes nothing, and stop still puts it all back
        assert gc.get_threshold() == during[0]
        # not frozen a second time (that would add the whole heap again)
        assert during[1] - _SLACK <= gc.get_freeze_count() <= during[1]
    if tuned:
        assert during[0][0] == 20_000
        assert during[1] > 0
    else:
        assert during == ((700, 10, 10), 0)
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)  # put back
    return weakref.ref(bot)


@pytest.mark.usefixtures("collector")
@pytest.mark.parametrize("tuned", [True, False])
async def test_run_until_stopped_tunes_the_collector_and_stop_puts_it_back(
    database_url: str, tuned: bool
) -> None:
    gc.set_threshold(700, 10, 10)
    first = await _run_and_stop(database_url, tuned=tuned)
    second = await _run_and_stop(database_url, tuned=tuned)
    gc.collect()
    # bots run one after another in one process are freed once dropped, frozen or not
    assert first() is None
    assert second() is None
