"""A bot process for the crash tests: it can hang in the handler or in the send, to be killed.

Usage: python -m tests.core._crash_bot DB_URL WORKDIR MODE [MESSAGE]
MODE: hang-handler | hang-send | hang-stream | stream | normal. Sends and edits are
appended to WORKDIR/sent.jsonl; the stage it reached is written to WORKDIR/stage. The
stream modes answer by streaming (hang-stream: one chunk, then it hangs).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

from botkit import (
    Adapter,
    Capabilities,
    Context,
    ConversationRef,
    Inbox,
    Message,
    Plugin,
    Reply,
    Sender,
    SentMessage,
)
from botkit.testing import run_bot


class FileAdapter(Adapter):
    """Accepts one message from the command line; appends each send to a file."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        max_length=4000, edits=True, edit_interval=0.0
    )

    def __init__(self, workdir: Path, mode: str, text: str | None) -> None:
        super().__init__("file")
        self.workdir, self.mode, self.text = workdir, mode, text

    def stage(self, name: str) -> None:
        (self.workdir / "stage").write_text(name)

    async def start(self, inbox: Inbox) -> None:
        if self.text is not None:
            await inbox.accept(
                Message(ConversationRef("file", "chat"), Sender("u1"), self.text, "crash-1")
            )
            self.stage("accepted")

    async def stop(self) -> None:
        pass

    async def send(
        self, conversation: ConversationRef, reply: Reply, *, delivery_id: str
    ) -> SentMessage:
        if self.mode == "hang-send":
            self.stage("sending")
            await asyncio.Event().wait()
        self.record("send", delivery_id, reply.text)
        self.stage("sent")
        return SentMessage(conversation, delivery_id, reply.text)

    async def edit(self, sent: SentMessage, text: str) -> SentMessage:
        self.record("edit", sent.external_id, text)
        self.stage("edited")
        return SentMessage(sent.conversation, sent.external_id, text)

    def record(self, op: str, delivery_id: str, text: str) -> None:
        with (self.workdir / "sent.jsonl").open("a") as out:
            line = {"op": op, "text": text, "delivery_id": delivery_id}
            out.write(json.dumps(line) + "\n")


async def main(db_url: str, workdir: Path, mode: str, text: str | None) -> None:
    adapter = FileAdapter(workdir, mode, text)
    plugin = Plugin("answer")

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str | None:
        if mode == "hang-handler":
            adapter.stage("handling")
            await asyncio.Event().wait()
        if mode in ("hang-stream", "stream"):
            await ctx.stream(chunks(message.text))
            return None
        return f"answer to {message.text}"

    async def chunks(text: str) -> AsyncIterator[str]:
        if mode == "hang-stream":
            yield "partial"
            await asyncio.sleep(0.3)  # past the first show: it is posted and stored
            adapter.stage("streaming")
            await asyncio.Event().wait()
        for word in ("answer ", "to ", text):
            yield word

    bot = run_bot(
        database_url=db_url,
        channels=[adapter],
        plugins=[plugin],
        model="config",
        config={"bot": {"claim_lease": 1.0}},
    ).bot
    async with bot:
        if text is None:
            adapter.stage("started")
        await bot.run_until_stopped()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], Path(args[1]), args[2], args[3] if len(args) > 3 else None))
