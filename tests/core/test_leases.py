"""Singleton leases: the rows (take, renew, lapse, release, job runs) and the holders.

Timing here is bounded on one side only: a lease is waited out by sleeping longer than
it lasts, and "stopped in time" is checked against the lease, never against a tight
window, so a loaded machine makes the tests slower, not wrong.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import timedelta
from typing import Any

import pytest

from botkit import ConfigError, Inbox, Singleton, StoreError
from botkit.clock import SystemClock
from botkit.leases import STOP_AT, Singletons
from botkit.store import Store
from botkit.store.leases import LeaseStore
from botkit.store.models import utcnow
from botkit.testing import run_bot

# -- the rows ----------------------------------------------------------------------------


async def test_a_free_lease_is_taken_with_token_1_and_refused_to_others(store: Store) -> None:
    taken = await store.leases.take("poller", "a", 30)
    assert (taken.token, taken.holder) == (1, "a")
    refused = await store.leases.take("poller", "b", 30)
    assert refused.token is None
    assert refused.holder == "a"
    assert 0 < refused.remaining <= 30
    info = await store.leases.info("poller")
    assert info is not None
    assert info.held
    assert (info.holder, info.token) == ("a", 1)


async def test_renewing_extends_only_the_holders_own_tenure(store: Store) -> None:
    await store.leases.take("poller", "a", 0.5)
    assert await store.leases.renew("poller", "a", 1, 30)
    assert not await store.leases.renew("poller", "b", 1, 30)
    assert not await store.leases.renew("poller", "a", 2, 30)
    info = await store.leases.info("poller")
    assert info is not None
    assert info.remaining > 0.5


async def test_a_lapsed_lease_cannot_be_renewed_and_goes_to_the_next_taker_with_a_new_token(
    store: Store,
) -> None:
    await store.leases.take("poller", "a", 0.2)
    await asyncio.sleep(0.4)  # longer than the lease: it has lapsed by any clock
    assert not await store.leases.renew("poller", "a", 1, 30)
    taken = await store.leases.take("poller", "b", 30)
    assert (taken.token, taken.holder) == (2, "b")


async def test_a_released_lease_is_free_at_once_and_the_token_keeps_growing(store: Store) -> None:
    await store.leases.take("poller", "a", 30)
    assert not await store.leases.release("poller", "b")  # not b's to release
    assert await store.leases.release("poller", "a", 1)
    info = await store.leases.info("poller")
    assert info is not None
    assert not info.held
    assert info.token == 1
    assert (await store.leases.take("poller", "b", 30)).token == 2
    assert (await store.leases.take("poller", "b", 30)).token == 3  # every take: new tenure


async def test_leases_are_independent_by_name(store: Store) -> None:
    assert (await store.leases.take("telegram:1", "a", 30)).token == 1
    assert (await store.leases.take("telegram:2", "b", 30)).token == 1
    assert await store.leases.info("nobody") is None


async def test_a_lease_name_must_fit_its_column(store: Store) -> None:
    with pytest.raises(ValueError, match="1-200"):
        await store.leases.take("x" * 201, "a", 30)
    with pytest.raises(ValueError, match="1-200"):
        Singletons(store.leases, holder="a", lease=30).singleton("x" * 201, Probe().work("a"))


async def test_a_job_due_time_is_recorded_once_and_fenced_by_the_scheduler_lease(
    store: Store,
) -> None:
    due = utcnow().replace(microsecond=250_000)
    assert await store.leases.last_run("digest.daily") is None
    assert await store.leases.record_run("digest.daily", due, "a")
    assert not await store.leases.record_run("digest.daily", due, "b")  # already fired
    assert await store.leases.last_run("digest.daily") == due
    later = due + timedelta(minutes=1)
    # fenced: only while the holder still holds that tenure of the lease
    assert not await store.leases.record_run("digest.daily", later, "a", fence=("scheduler", 1))
    await store.leases.take("scheduler", "a", 30)
    assert not await store.leases.record_run("digest.daily", later, "a", fence=("scheduler", 2))
    assert await store.leases.record_run("digest.daily", later, "a", fence=("scheduler", 1))
    assert await store.leases.last_run("digest.daily") == later


# -- the holders -------------------------------------------------------------------------


class Probe:
    """Work that notes when it runs, and how many copies run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.starts: list[str] = []
        self.stopped_at: list[float] = []

    def work(self, who: str) -> Any:
        async def run() -> None:
            self.running += 1
            self.most = max(self.most, self.running)
            self.starts.append(who)
            try:
                await asyncio.Event().wait()
            finally:
                self.running -= 1
                self.stopped_at.append(time.monotonic())

        return run


class Unreachable(LeaseStore):
    """The real lease queries, until ``broken`` is set: then takes and renewals fail as
    if the database were out of reach. Notes when the last successful renewal (or take)
    was sent."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.db)
        self.broken = False
        self.last_sent = 0.0

    async def take(self, name: str, holder: str, seconds: float) -> Any:
        if self.broken:
            raise StoreError("could not take a lease: connection refused")
        sent = time.monotonic()
        taken = await super().take(name, holder, seconds)
        if taken.token is not None:
            self.last_sent = sent
        return taken

    async def renew(self, name: str, holder: str, token: int, seconds: float) -> bool:
        if self.broken:
            raise StoreError("could not renew a lease: connection refused")
        sent = time.monotonic()
        renewed = await super().renew(name, holder, token, seconds)
        if renewed:
            self.last_sent = sent
        return renewed


async def eventually(condition: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {within} s")
        await asyncio.sleep(0.01)


def start(singleton: Singleton) -> asyncio.Task[None]:
    return asyncio.create_task(singleton.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_one_holder_runs_the_work_and_a_clean_stop_hands_it_over_at_once(
    store: Store,
) -> None:
    lease = 5.0
    probe = Probe()
    first = Singletons(store.leases, holder="a", lease=lease).singleton("poller", probe.work("a"))
    second = Singletons(store.leases, holder="b", lease=lease).singleton("poller", probe.work("b"))
    a = start(first)
    await eventually(lambda: first.held, 5)
    b = start(second)
    await asyncio.sleep(0.3)
    assert not second.held
    assert probe.starts == ["a"]
    await stop(a)
    info = await store.leases.info("poller")
    assert info is not None
    assert info.holder is None
    # b tries again every lease/3, so it takes over long before the lease would lapse
    await eventually(lambda: second.held, lease)
    # held first, then its work starts (a task of its own): wait for that, not race it
    await eventually(lambda: probe.starts == ["a", "b"], lease)
    assert probe.most == 1
    assert first.token == 1
    assert second.token == 2
    await stop(b)


async def test_a_holder_that_cannot_renew_stops_before_its_lease_ends_and_another_takes_over(
    store: Store,
) -> None:
    lease = 3.0
    probe = Probe()
    failing = Unreachable(store)
    taken_over: list[str] = []
    first = Singletons(failing, holder="a", lease=lease, on_takeover=taken_over.append).singleton(
        "poller", probe.work("a")
    )
    second = Singletons(
        store.leases, holder="b", lease=lease, on_takeover=taken_over.append
    ).singleton("poller", probe.work("b"))
    a = start(first)
    await eventually(lambda: first.held, 5)
    b = start(second)
    failing.broken = True  # the database is out of a's reach from now on
    await eventually(lambda: not first.held, 2 * lease)
    assert probe.stopped_at, "a's work was not stopped"
    # stopped before the lease the database granted on a's last renewal could end
    assert probe.stopped_at[0] - failing.last_sent < lease
    assert probe.stopped_at[0] - failing.last_sent >= lease * STOP_AT
    await eventually(lambda: second.held, 2 * lease)  # b takes over once it lapses
    await eventually(lambda: probe.starts == ["a", "b"], lease)  # its work, a task
    assert probe.most == 1
    assert second.token == 2
    # a took a free lease; b took one a had held: one take-over (botkit_lease_takeovers)
    assert taken_over == ["poller"]
    await stop(a)
    await stop(b)
    assert probe.running == 0


async def test_a_holder_whose_lease_was_taken_over_stops_its_work(store: Store) -> None:
    probe = Probe()
    first = Singletons(store.leases, holder="a", lease=1.0).singleton("poller", probe.work("a"))
    a = start(first)
    await eventually(lambda: first.held, 5)
    # another process takes it (as if a's lease had lapsed while a was stalled)
    await store.leases.release("poller", "a")
    assert (await store.leases.take("poller", "b", 30)).token == 2
    await eventually(lambda: not first.held, 5)  # its next renewal finds out
    assert probe.running == 0
    await stop(a)
    info = await store.leases.info("poller")
    assert info is not None
    assert info.holder == "b"


async def test_work_that_returns_ends_the_run_and_releases_the_lease(store: Store) -> None:
    ran: list[int] = []

    async def work() -> None:
        ran.append(1)

    singleton = Singletons(store.leases, holder="a", lease=30).singleton("once", work)
    await asyncio.wait_for(singleton.run(), 10)
    assert ran == [1]
    assert not singleton.held
    info = await store.leases.info("once")
    assert info is not None
    assert info.holder is None


async def test_work_that_raises_releases_the_lease_and_the_error_propagates(
    store: Store,
) -> None:
    async def work() -> None:
        raise RuntimeError("broken poller")

    singleton = Singletons(store.leases, holder="a", lease=30).singleton("once", work)
    with pytest.raises(RuntimeError, match="broken poller"):
        await asyncio.wait_for(singleton.run(), 10)
    info = await store.leases.info("once")
    assert info is not None
    assert info.holder is None


async def test_one_bot_cannot_run_two_singletons_under_one_name(store: Store) -> None:
    probe = Probe()
    singletons = Singletons(store.leases, holder="a", lease=30)
    first = start(singletons.singleton("poller", probe.work("a")))
    await eventually(lambda: probe.running == 1, 5)
    with pytest.raises(ValueError, match="already used"):
        await singletons.singleton("poller", probe.work("a")).run()
    await stop(first)


async def test_an_inbox_without_a_store_runs_singleton_work_unleased() -> None:
    class HandMade(Inbox):
        def __init__(self) -> None:  # a test double that skips the real constructor
            pass

    ran: list[int] = []

    async def work() -> None:
        ran.append(1)

    await HandMade().singleton("poller", work).run()
    assert ran == [1]


async def test_expiry_is_judged_by_postgresqls_clock_and_by_the_process_clock_on_sqlite(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the process's clock is an hour fast: only SQLite's leases follow it
    fast = utcnow() + timedelta(hours=1)
    monkeypatch.setattr("botkit.store._timed.utcnow", lambda: fast)
    await store.leases.take("poller", "a", 30)
    info = await store.leases.info("poller")
    assert info is not None
    assert info.until is not None
    if store.db.sqlite:
        assert info.until == fast + timedelta(seconds=30)
    else:
        assert info.until < fast  # now() + 30 s by the server, not the process's hour ahead


async def test_the_holder_renews_every_third_of_a_lease_and_keeps_it(store: Store) -> None:
    lease = 0.6
    probe = Probe()
    counting = Unreachable(store)  # never broken: it only notes the renewals
    sent: list[float] = []
    renew = counting.renew

    async def noted(name: str, holder: str, token: int, seconds: float) -> bool:
        sent.append(time.monotonic())
        return await renew(name, holder, token, seconds)

    counting.renew = noted  # type: ignore[method-assign]
    singleton = Singletons(counting, holder="a", lease=lease).singleton("poller", probe.work("a"))
    task = start(singleton)
    await eventually(lambda: len(sent) >= 4, 10 * lease)
    assert singleton.held
    assert singleton.token == 1  # the same tenure throughout
    assert probe.starts == ["a"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert all(gap >= lease / 3 * 0.99 for gap in gaps)  # never more often than lease/3
    await stop(task)


async def test_the_singleton_lease_defaults_to_the_claim_lease(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    assert (
        run_bot(
            database_url=url,
            channels=[],
            model="config",
            config={"bot": {"claim_lease": 12}},
            clock=SystemClock(),
        ).bot.singletons.lease
        == 12
    )
    assert (
        run_bot(
            database_url=url,
            channels=[],
            model="config",
            config={"bot": {"singleton_lease": 3}},
            clock=SystemClock(),
        ).bot.singletons.lease
        == 3
    )
    with pytest.raises(ConfigError, match="singleton_lease"):
        run_bot(
            database_url=url,
            channels=[],
            model="config",
            config={"bot": {"singleton_lease": 0.5}},
            clock=SystemClock(),
        )


class Refusing(LeaseStore):
    """A database that refuses connections (the driver's own error, not a StoreError)
    for the first ``failures`` calls."""

    def __init__(self, store: Store, failures: int) -> None:
        super().__init__(store.db)
        self.failures = failures

    async def take(self, name: str, holder: str, seconds: float) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        return await super().take(name, holder, seconds)


async def test_a_database_that_refuses_connections_delays_the_take_but_never_ends_it(
    store: Store,
) -> None:
    probe = Probe()
    refusing = Refusing(store, failures=2)
    singleton = Singletons(refusing, holder="a", lease=0.6).singleton("poller", probe.work("a"))
    task = start(singleton)
    await eventually(lambda: singleton.held, 10)
    assert refusing.failures == 0
    await eventually(lambda: probe.starts == ["a"], 5)  # its work, a task of its own
    await stop(task)
