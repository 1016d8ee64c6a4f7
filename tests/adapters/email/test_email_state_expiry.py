"""The email adapter's per-delivery bookkeeping expires and is pruned; how far intake got
is kept for good (a real store, each backend)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from botkit.store import Store
from botkit.store.models import Base
from botkit_email._ledger import DELIVERY_TTL, Ledger, Position

_state = Base.metadata.tables["state"]


async def _rows(store: Store) -> set[tuple[str, str]]:
    query = select(_state.c.namespace, _state.c.key)
    return await store.db.read(lambda conn: {(n, k) for n, k in conn.execute(query).all()})


async def _expire_now(store: Store, namespace: str, key: str) -> None:
    """Move a key's expiry into the past (the database's clock cannot be moved)."""
    query = (
        update(_state)
        .where(_state.c.namespace == namespace, _state.c.key == key)
        .values(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
    )
    await store.db.write(lambda conn: conn.execute(query))


async def test_the_email_adapters_per_delivery_keys_expire_and_are_pruned(store: Store) -> None:
    ledger = Ledger(store.state("adapter:email"))
    await ledger.save_delivery("d-1", "sent", "<m1@example.org>")
    await ledger.grant("sender", "ann@example.org", 1.0, "mail-1", period=60.0)
    await ledger.set_position("INBOX", Position(7, 42))  # how far intake got: kept
    expiry = select(_state.c.key, _state.c.expires_at, _state.c.updated_at)
    rows = await store.db.read(lambda conn: conn.execute(expiry).all())
    left = {key: None if ends is None else ends - at for key, ends, at in rows}
    assert left["position:INBOX"] is None
    assert abs(left["delivery:d-1"] - DELIVERY_TTL) < timedelta(minutes=1)  # type: ignore[operator]
    assert left["sender:ann@example.org"] < timedelta(hours=2)  # type: ignore[operator]
    for key in ("delivery:d-1", "sender:ann@example.org"):
        await _expire_now(store, "adapter:email", key)
    assert await ledger.delivery("d-1") is None
    assert await store.prune_state() == 2
    assert await _rows(store) == {("adapter:email", "position:INBOX")}
    assert await ledger.position("INBOX") == Position(7, 42)
