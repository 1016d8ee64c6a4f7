"""One IMAP watcher per mailbox cluster-wide: two bots on one database take turns.

No mail server is needed: opening an IMAP session is replaced by one that notes which
adapter asked and fails like a server that is down, so each watcher that runs keeps
trying to connect, and the test sees which ones run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from botkit import Bot, Secret, ServiceUnavailableError
from botkit.store import Database, Store
from botkit.testing import run_bot
from botkit_email import EmailAdapter, EmailSettings, _imap

LEASE = 1.0


def settings(mailbox: str = "INBOX") -> EmailSettings:
    return EmailSettings(
        address="bot@example.test",
        imap_host="127.0.0.1",
        imap_port=1,
        imap_tls="none",
        smtp_host="127.0.0.1",
        smtp_port=1,
        smtp_tls="none",
        password=Secret("imap-Pass-1", source="BOTKIT_EMAIL_PASSWORD"),
        mailbox=mailbox,
        reconnect_min=0.02,
        reconnect_max=0.05,
        timeout=1.0,
    )


def mail_bot(database_url: str, adapter: EmailAdapter) -> Bot:
    return run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[],
        model="config",
        config={"bot": {"singleton_lease": LEASE}},
    ).bot


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The redactor (one per adapter) of every IMAP session a watcher tried to open."""
    attempts: list[object] = []

    async def refuse(
        cls: Any, settings: EmailSettings, redactor: object, tokens: object = None
    ) -> Any:
        attempts.append(redactor)
        raise ServiceUnavailableError("imap", "connection refused")

    monkeypatch.setattr(_imap.ImapSession, "open", classmethod(refuse))
    return attempts


async def eventually(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {within} s")
        await asyncio.sleep(0.01)


def watching(adapter: EmailAdapter) -> bool:
    return adapter.watching is not None and adapter.watching.held


async def test_two_bots_watch_one_mailbox_one_at_a_time_and_the_second_takes_over(
    database_url: str, opened: list[object]
) -> None:
    first, second = EmailAdapter("email", settings()), EmailAdapter("email", settings())
    first_bot, second_bot = mail_bot(database_url, first), mail_bot(database_url, second)
    try:
        await first_bot.start()
        await eventually(lambda: watching(first), 5)
        await second_bot.start()
        await asyncio.sleep(3 * LEASE)  # several renewals; the second one keeps waiting
        assert not watching(second)
        assert opened
        assert {id(r) for r in opened} == {id(first._redactor)}
        seen = len(opened)
        await first_bot.stop()  # logs out and releases the lease at once
        await eventually(lambda: watching(second), 5 * LEASE)
        await eventually(lambda: len(opened) > seen, 5)
        assert {id(r) for r in opened[seen:]} == {id(second._redactor)}
    finally:
        await first_bot.stop()
        await second_bot.stop()


async def test_each_mailbox_has_a_lease_of_its_own(
    database_url: str, opened: list[object]
) -> None:
    inbox, support = (
        EmailAdapter("email", settings()),
        EmailAdapter("support", settings("Support")),
    )
    assert inbox.lease_name == "imap:bot@example.test@127.0.0.1:1/INBOX"
    assert support.lease_name != inbox.lease_name
    bot = run_bot(
        database_url=database_url,
        channels=[inbox, support],
        plugins=[],
        model="config",
        config={"bot": {"singleton_lease": LEASE}},
    ).bot
    try:
        await bot.start()
        await eventually(lambda: watching(inbox) and watching(support), 5)
    finally:
        await bot.stop()
    database = Database(database_url)
    try:
        for name in (inbox.lease_name, support.lease_name):
            info = await Store(database).leases.info(name)
            assert info is not None
            assert info.holder is None  # a clean stop released both
    finally:
        await database.close()


async def test_a_very_long_mailbox_name_still_makes_a_valid_lease_name() -> None:
    adapter = EmailAdapter("email", settings("Archive/" + "x" * 300))
    assert adapter.lease_name.startswith("imap:")
    assert len(adapter.lease_name) <= 200
