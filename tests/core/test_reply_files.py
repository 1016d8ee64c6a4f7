"""A reply's files (a spoken reply's audio) travel through the outbox: stored with the
reply until it is delivered, so a process that sends it later (after a crash) still has
them; dropped from the stored row once delivered, so history does not carry audio."""

from __future__ import annotations

from botkit import Attachment, ConversationRef, Reply, ServiceUnavailableError
from botkit.claims import Claims
from botkit.metrics import Metrics
from botkit.outbox import Outbox, OutboxPolicy, draft_of
from botkit.store import Store
from botkit.testing import InMemoryChannel

AUDIO = bytes(range(256)) * 40  # binary, not text: base64 must carry it exactly


async def test_a_reply_with_a_file_is_sent_with_its_bytes_after_a_restart(store: Store) -> None:
    ref = ConversationRef("test", "chat")
    conversation_id = await store.history.conversation_id(ref)
    audio = Attachment("reply.ogg", "audio/ogg", len(AUDIO), data=AUDIO)
    # stored by a process that stopped before sending it
    await store.outbound.add(
        draft_of(conversation_id, "test", Reply("hi", attachments=(audio,)), None)
    )

    channel = InMemoryChannel()
    outbox = Outbox(store, {"test": channel}, Metrics(), claims=Claims(owner="B"))
    await outbox.resume()
    await outbox.close()

    [sent] = channel.sent
    assert sent.text == "hi"
    [file] = sent.reply.attachments
    assert (file.name, file.content_type, file.size, file.data) == (
        "reply.ogg",
        "audio/ogg",
        len(AUDIO),
        AUDIO,
    )
    [row] = await store.history.turns(conversation_id, before_id=None, limit=5)
    assert row.status == "delivered"
    assert row.meta["files"] == [
        {"name": "reply.ogg", "content_type": "audio/ogg", "size": len(AUDIO), "url": None}
    ]


async def test_a_failed_send_keeps_the_bytes_for_the_next_attempt(store: Store) -> None:
    ref = ConversationRef("test", "chat")
    conversation_id = await store.history.conversation_id(ref)
    audio = Attachment("reply.mp3", "audio/mpeg", data=AUDIO)
    await store.outbound.add(
        draft_of(conversation_id, "test", Reply("", attachments=(audio,)), None)
    )

    class Flaky(InMemoryChannel):
        failures = 1

        async def send(self, conversation, reply, *, delivery_id):  # type: ignore[no-untyped-def]
            if self.failures:
                self.failures -= 1
                raise ServiceUnavailableError("test", "down")
            return await super().send(conversation, reply, delivery_id=delivery_id)

    channel = Flaky()
    policy = OutboxPolicy(backoff_base=0.01, backoff_max=0.01)
    outbox = Outbox(store, {"test": channel}, Metrics(), policy, claims=Claims(owner="B"))
    await outbox.flush(conversation_id)
    await outbox.close()
    [sent] = channel.sent
    assert sent.reply.attachments[0].data == AUDIO
