"""A bot process for the crash tests: it can hang in the handler or in the send, to be killed.

Usage: python -m tests.core._crash_bot DB_URL WORKDIR MODE [MESSAGE]
MODE: hang-handler | hang-send | normal. Sends are appended to WORKDIR/sent.jsonl; the
stage it reached is written to WORKDIR/stage.
"""

from __future__ import annotations

import asyncio
import json
import sys
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
from tests.fakes.bots import make_bot


class FileAdapter(Adapter):
    """Accepts one message from the command line; appends each send to a file."""

    capabilities: ClassVar[Capabilities] = Capabilities(max_length=4000)

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
        with (self.workdir / "sent.jsonl").open("a") as out:
            out.write(json.dumps({"text": reply.text, "delivery_id": delivery_id}) + "\n")
        self.stage("sent")
        return SentMessage(conversation, delivery_id, reply.text)


async def main(db_url: str, workdir: Path, mode: str, text: str | None) -> None:
    adapter = FileAdapter(workdir, mode, text)
    plugin = Plugin("answer")

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        if mode == "hang-handler":
            adapter.stage("handling")
            await asyncio.Event().wait()
        return f"answer to {message.text}"

    bot = make_bot(db_url, {"file": adapter}, plugins=[plugin], bot={"claim_lease": 1.0})
    async with bot:
        if text is None:
            adapter.stage("started")
        await bot.run_until_stopped()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], Path(args[1]), args[2], args[3] if len(args) > 3 else None))
