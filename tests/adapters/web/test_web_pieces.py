"""The web chat's parts alone: visitor cookies, the hub of open pages, the transcript."""

from __future__ import annotations

import asyncio
from typing import Any

from botkit import ConversationRef, Message, Sender
from botkit.store import OutboundDraft, Store
from botkit_web._hub import QUEUE_LIMIT, Client, Hub
from botkit_web._visitors import VisitorIds, load_secret


def test_a_cookie_is_valid_only_with_its_secret_and_scope() -> None:
    ids = VisitorIds(b"k" * 32, "web")
    visitor, cookie = ids.new()
    assert ids.check(cookie) == visitor
    assert VisitorIds(b"j" * 32, "web").check(cookie) is None
    assert VisitorIds(b"k" * 32, "support").check(cookie) is None  # another web chat
    other, _ = ids.new()
    assert ids.check(f"{other}.{cookie.partition('.')[2]}") is None  # a signature moved
    assert ids.check(None) is None
    assert ids.check("é.é") is None


async def test_the_secret_made_for_a_database_is_kept_in_it(store: Store) -> None:
    state = store.state("adapter:web")
    first = await load_secret(state)
    assert len(first) == 64
    assert await load_secret(state) == first


class _Socket:
    """Stands in for a page's socket: records what is written, or never finishes."""

    def __init__(self, *, stalled: bool = False) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, bytes] | None = None
        self._stalled = stalled

    async def send_str(self, text: str) -> None:
        if self._stalled:
            await asyncio.Event().wait()
        self.sent.append(text)

    async def close(self, *, code: int, message: bytes) -> bool:
        self.closed = (code, message)
        return True


async def test_a_page_that_falls_behind_is_closed_and_holds_up_nobody() -> None:
    hub = Hub(per_visitor=4, total=10)
    slow, quick = _Socket(stalled=True), _Socket()
    stalled = hub.join("v", slow)  # type: ignore[arg-type]
    fine = hub.join("v", quick)  # type: ignore[arg-type]
    assert isinstance(stalled, Client)
    assert isinstance(fine, Client)
    stalled.start([{"type": "history", "messages": []}])
    fine.start([])
    for n in range(QUEUE_LIMIT + 5):  # never waits, however stalled a page is
        hub.push("v", {"type": "message", "id": f"b-{n}", "role": "bot", "html": "x"})
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    assert len(quick.sent) == QUEUE_LIMIT + 5
    assert not fine.closing
    assert stalled.closing  # queues nothing more; its socket's heartbeat ends it
    await stalled.stop()
    await fine.stop()


async def test_the_journal_keeps_the_newest_text_of_each_reply() -> None:
    hub = Hub(per_visitor=1, total=1)
    for text in ("a", "ab", "abc"):
        hub.push("v", {"type": "message", "id": "b-1", "role": "bot", "html": text})
    hub.push("v", {"type": "message", "id": "b-2", "role": "bot", "html": "z"})
    hub.push("w", {"type": "message", "id": "b-3", "role": "bot", "html": "other"})
    hub.push("v", {"type": "typing"})
    recent: dict[str, Any] = hub.recent("v")
    assert [(k, f["html"]) for k, f in recent.items()] == [("b-1", "abc"), ("b-2", "z")]


async def test_the_transcript_keeps_every_message_but_failed_replies(store: Store) -> None:
    ref, other = ConversationRef("web", "v1"), ConversationRef("web", "v2")
    ids = []
    for n, conversation in enumerate([ref, ref, other]):
        accepted, conversation_id = await store.inbound.accept(
            Message(conversation, Sender("v"), f"in {n}", external_id=f"x{n}")
        )
        ids.append((accepted.message_id, conversation_id))
    await store.inbound.set_status([ids[1][0]], "failed", error="boom")
    for text, status in (("out ok", "delivered"), ("out failed", "failed")):
        row = await store.outbound.add(
            OutboundDraft(ids[0][1], "web", text, reply_to_id=ids[0][0], status=status)
        )
        assert row > 0
    rows = await store.history.transcript(ref, limit=10)
    assert [(r.direction, r.text) for r in rows] == [
        ("in", "in 0"), ("in", "in 1"), ("out", "out ok"),
    ]  # fmt: skip
    assert [r.text for r in await store.history.transcript(ref, limit=2)] == ["in 1", "out ok"]
