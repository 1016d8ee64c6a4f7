"""The open pages (sockets) of each visitor, and what is pushed to them.

Pushing never waits on a browser: each socket has its own queue, written by its own
task, so a stalled page cannot hold up the outbox. A page that falls too far behind is
closed, and on reconnecting it loads the conversation afresh.

The hub also remembers the newest text of the last replies it pushed (a journal), for
a page that connects while a reply is being shown: the store has the text a reply had
when it was first posted and the whole answer once it is finished, and the journal has
what the page would have seen in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import WSCloseCode, web

__all__ = ["Client", "Hub", "Refused"]

log = logging.getLogger(__name__)

Frame = Mapping[str, Any]
#: Frames waiting for one page before it counts as stalled and is closed.
QUEUE_LIMIT = 512
#: Replies whose newest text the journal keeps, across all visitors.
JOURNAL_SIZE = 1000


class Refused(str):
    """Why a socket was not let in (too many open): said to the page before closing."""


class Client:
    """One open page of a visitor."""

    def __init__(self, visitor: str, socket: web.WebSocketResponse) -> None:
        self.visitor = visitor
        self.socket = socket
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._close: tuple[int, str] | None = None

    @property
    def closing(self) -> bool:
        """Whether the page is being closed (nothing more is queued for it)."""
        return self._close is not None

    def push(self, frame: Frame) -> None:
        """Queue a frame for the page (written after those already queued)."""
        if self._close is not None:
            return
        if self._queue.qsize() >= QUEUE_LIMIT:
            log.warning("web chat: a page of visitor %s fell behind; closed", self.visitor[:6])
            self.close_soon(WSCloseCode.TRY_AGAIN_LATER, "too far behind; reconnect")
            return
        self._queue.put_nowait(json.dumps(frame))

    def start(self, first: Iterable[Frame]) -> None:
        """Start writing: ``first``, then whatever was pushed meanwhile."""
        ahead = [json.dumps(frame) for frame in first]
        self._writer = asyncio.create_task(self._write(ahead), name="botkit-web-writer")

    def close_soon(self, code: int, message: str) -> None:
        """Close the socket once what is queued before now is written."""
        if self._close is None:
            self._close = (code, message)
            self._queue.put_nowait(None)

    async def stop(self) -> None:
        """Stop writing (the page has gone)."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def _write(self, ahead: list[str]) -> None:
        try:
            for text in ahead:
                await self.socket.send_str(text)
            while (queued := await self._queue.get()) is not None:
                await self.socket.send_str(queued)
        except (ConnectionError, RuntimeError) as exc:  # the page went away mid-write
            log.debug("web chat: stopped writing to a page: %s", exc)
        if self._close is not None:
            code, message = self._close
            await self.socket.close(code=code, message=message.encode())


class Hub:
    """Every open page, by visitor; bounded per visitor and in all.

    Args:
        per_visitor: the most pages one visitor may have open.
        total: the most pages open in all.
    """

    def __init__(self, *, per_visitor: int, total: int) -> None:
        self._per_visitor = per_visitor
        self._total = total
        self._clients: dict[str, set[Client]] = {}
        self._count = 0
        self._journal: OrderedDict[tuple[str, str], Frame] = OrderedDict()

    @property
    def count(self) -> int:
        """Pages open now."""
        return self._count

    def join(self, visitor: str, socket: web.WebSocketResponse) -> Client | Refused:
        """Let a page in: from now on it is pushed what its visitor is sent (held until
        :meth:`Client.start`); or say why not."""
        mine = self._clients.get(visitor, set())
        if len(mine) >= self._per_visitor:
            return Refused(
                f"too many open chat pages ({self._per_visitor} at most): close one and "
                "reload this one"
            )
        if self._count >= self._total:
            return Refused("the chat is full right now; try again in a minute")
        client = Client(visitor, socket)
        self._clients[visitor] = mine | {client}
        self._count += 1
        return client

    def leave(self, client: Client) -> None:
        """Forget a page that has closed."""
        mine = self._clients.get(client.visitor)
        if mine is None or client not in mine:
            return
        mine.discard(client)
        self._count -= 1
        if not mine:
            del self._clients[client.visitor]

    def push(self, visitor: str, frame: Frame, *, skip: Client | None = None) -> int:
        """Queue ``frame`` for every open page of ``visitor`` but ``skip``; how many.

        A reply (a frame with an ``id`` and ``"role": "bot"``) is also kept in the
        journal as that reply's newest text.
        """
        if frame.get("role") == "bot" and isinstance(frame.get("id"), str):
            key = (visitor, frame["id"])
            self._journal[key] = frame
            self._journal.move_to_end(key)
            while len(self._journal) > JOURNAL_SIZE:
                self._journal.popitem(last=False)
        pushed = 0
        for client in self._clients.get(visitor, ()):
            if client is not skip:
                client.push(frame)
                pushed += 1
        return pushed

    def recent(self, visitor: str) -> dict[str, Frame]:
        """The journal's replies to ``visitor`` by id, oldest first: the newest frame
        pushed for each."""
        return {key[1]: frame for key, frame in self._journal.items() if key[0] == visitor}

    async def close_all(self, code: int, message: str) -> None:
        """Close every page (the bot stops)."""
        clients = [c for mine in self._clients.values() for c in mine]
        for client in clients:
            client.close_soon(code, message)
        for client in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.socket.close(code=code, message=message.encode()), 2)
