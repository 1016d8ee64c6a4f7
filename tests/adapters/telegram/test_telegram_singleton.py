"""Telegram polling in one process at a time: two bots on one database and one token.

The fake Bot API ends a getUpdates that is still waiting when another one arrives, with
409 "Conflict: terminated by other getUpdates request", as Telegram does, and records
each such overlap; the first test shows it does, so the later ones can rely on it.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from botkit import Bot, StoreError
from botkit.store import Database, Store
from botkit.testing import run_bot
from botkit_telegram import TelegramAdapter
from tests.adapters.telegram.support import (
    RecordingInbox,
    corpus,
    eventually,
    fast_limiter,
    make_settings,
)
from tests.fakes.telegram_api import FakeTelegramAPI

CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot "
    "instance is running"
)
LEASE = 1.0  # bot.singleton_lease: short, so a takeover is quick


def adapter(api: FakeTelegramAPI) -> TelegramAdapter:
    return TelegramAdapter("telegram", make_settings(api), limiter=fast_limiter())


def telegram_bot(database_url: str, api: FakeTelegramAPI) -> Bot:
    return run_bot(
        database_url=database_url,
        channels=[adapter(api)],
        model="config",
        config={"bot": {"singleton_lease": LEASE, "stream": False}},
    ).bot


def polling(bot: Bot) -> Any:
    telegram = bot.adapters["telegram"]
    assert isinstance(telegram, TelegramAdapter)
    assert telegram.polling is not None
    return telegram.polling


def private_text(update_id: int, text: str) -> dict[str, Any]:
    update = copy.deepcopy(corpus("01-private-text"))
    update["update_id"] = update_id
    update["message"]["message_id"] = update_id
    update["message"]["text"] = text
    return update


async def test_the_fake_ends_an_overlapped_getupdates_with_409_as_telegram_does(
    api: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    # two adapters without a lease (an inbox built by hand): both poll, and collide
    first, second = adapter(api), adapter(api)
    await first.start(RecordingInbox())
    await second.start(RecordingInbox())
    try:
        await eventually(lambda: len(api.overlaps) >= 2, within=10)
    finally:
        await first.stop()
        await second.stop()
    refused = [r.getMessage() for r in caplog.records if "409 Conflict" in r.getMessage()]
    assert refused
    assert all(CONFLICT in message for message in refused)


async def test_two_bots_on_one_token_poll_one_at_a_time_and_the_second_takes_over(
    database_url: str, api: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    first = telegram_bot(database_url, api)
    second = telegram_bot(database_url, api)
    both: list[bool] = []

    async def watch() -> None:  # never both holding, as each bot sees it
        while True:
            both.append(polling(first).held and polling(second).held)
            await asyncio.sleep(0.01)

    await first.start()
    watcher = asyncio.create_task(watch())
    try:
        await eventually(lambda: polling(first).held, within=5)
        await second.start()
        await api.push_update(private_text(901, "hello from before"))
        await eventually(lambda: len(api.sent) == 1, within=10)
        await asyncio.sleep(3 * LEASE)  # several renewals; the second bot keeps waiting
        assert not polling(second).held
        calls_before = len(api.calls("getUpdates"))
        await first.stop()  # a clean stop releases the lease at once
        await eventually(lambda: polling(second).held, within=5 * LEASE)
        await api.push_update(private_text(902, "hello after the hand-over"))
        await eventually(lambda: len(api.sent) == 2, within=10)
        assert len(api.calls("getUpdates")) > calls_before  # the second one polls now
        assert polling(second).token > 1  # a new tenure, a higher token
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await first.stop()
        await second.stop()
    assert api.overlaps == []  # no two getUpdates ever waited at once
    assert not any(both)
    assert not [r for r in caplog.records if "409" in r.getMessage()]
    assert [s.chat_id for s in api.sent] == [api.sent[0].chat_id] * 2  # each answered once


async def test_a_stopped_bot_releases_the_telegram_lease_at_once(
    database_url: str, api: FakeTelegramAPI
) -> None:
    bot = telegram_bot(database_url, api)
    await bot.start()
    try:
        await eventually(lambda: polling(bot).held, within=5)
        name = polling(bot).name
        info = await bot.store.leases.info(name)
        assert info is not None
        assert info.holder == bot.runtime.owner
        assert name == f"telegram:{api.bot_user['id']}"
        database = bot.database.url
    finally:
        await bot.stop()
    check = Database(database)
    try:
        info = await Store(check).leases.info(name)
        assert info is not None
        assert info.holder is None
    finally:
        await check.close()


async def test_a_bot_that_cannot_renew_stops_polling_before_the_other_starts(
    database_url: str,
    api: FakeTelegramAPI,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = telegram_bot(database_url, api)
    second = telegram_bot(database_url, api)
    try:
        await first.start()
        await eventually(lambda: polling(first).held, within=5)
        await second.start()

        async def unreachable(*args: object, **kwargs: object) -> Any:
            raise StoreError("could not renew a lease: connection refused")

        # the first bot loses its database, as a stalled or cut-off process would
        monkeypatch.setattr(first.store.leases, "renew", unreachable)
        monkeypatch.setattr(first.store.leases, "take", unreachable)
        await eventually(lambda: polling(second).held, within=10 * LEASE)
        assert not polling(first).held
        await api.push_update(private_text(903, "hello to whoever polls"))
        await eventually(lambda: len(api.sent) == 1, within=10)
    finally:
        await first.stop()
        await second.stop()
    assert api.overlaps == []  # the first stopped polling before the second began
    assert not [r for r in caplog.records if "409" in r.getMessage()]
