"""Message drafts: how a private chat sees an answer while it is written.

``sendMessageDraft`` (Bot API 9.3, ``Bot.send_message_draft`` in python-telegram-bot
22.6+) shows a partial message in a private chat, animated from one call to the next
under the same non-zero ``draft_id``. A draft is no message: Telegram's apps drop it
after about 30 seconds, or as soon as a real message arrives in the chat, so the
finished answer is sent with ``sendMessage`` as any reply (by the outbox, once).

Groups, supergroups and channels have no drafts (Telegram answers
``TEXTDRAFT_PEER_INVALID``): they are never asked, and keep the edit path. A chat that
refuses drafts anyway, or a Bot API server that does not know the method (a local
server older than 9.3), is remembered, and answers there are posted and edited instead.
"""

from __future__ import annotations

import logging
import zlib
from collections import OrderedDict

from telegram import Bot
from telegram import error as tg

from botkit import RequestRejectedError, claim_lost_cause, ensure_claims_live
from botkit_telegram._errors import is_entity_error, retry_after_seconds, service_error
from botkit_telegram._limits import FloodLimiter
from botkit_telegram._markdown import Piece, render_pieces

__all__ = ["Drafts", "draft_id_of"]

log = logging.getLogger(__name__)

MAX_LENGTH = 4096  # a draft's text, after entity parsing, as a message's
_REMEMBERED = 10_000  # chats that refused drafts, kept in memory


def draft_id_of(delivery_id: str) -> int:
    """The draft id of one outbox entry: its number (``"botkit-17"`` is 17), the same
    after a crash, so a new try of the answer continues the same draft."""
    tail = delivery_id.rpartition("-")[2]
    if tail.isdigit() and 0 < int(tail) < 2**63:
        return int(tail)
    return zlib.crc32(delivery_id.encode()) or 1


class Drafts:
    """Shows drafts in private chats and remembers where Telegram refused them.

    Args:
        bot: the adapter's bot.
        limiter: the adapter's flood limiter: drafts keep the chat's pace like messages.
    """

    def __init__(self, bot: Bot, limiter: FloodLimiter) -> None:
        self._bot = bot
        self._limiter = limiter
        self._refused: OrderedDict[int, None] = OrderedDict()
        self._unknown = False  # the Bot API server has no sendMessageDraft

    def allowed(self, chat_id: int) -> bool:
        """Whether answers in ``chat_id`` stream as drafts: private chats (positive ids)
        that have not refused them, on a server that has the method."""
        return chat_id > 0 and not self._unknown and chat_id not in self._refused

    async def start(
        self, chat_id: int, thread_id: int | None, draft_id: int, text: str, *, markdown: bool
    ) -> bool:
        """Show the first draft; whether drafts work here (a refusal is remembered).

        Raises:
            ServiceError: flood control or the network; a later answer tries again.
        """
        try:
            await self._show(chat_id, thread_id, draft_id, text, markdown=markdown)
        except tg.InvalidToken as exc:
            # the token worked for getMe: a 404 here is the method missing on the server
            log.warning("this Bot API server has no sendMessageDraft (%s); answers edit", exc)
            self._unknown = True
            return False
        except tg.BadRequest as exc:
            log.info("chat %d refused a draft (%s); its answers edit", chat_id, exc.message)
            self._refused[chat_id] = None
            while len(self._refused) > _REMEMBERED:
                self._refused.popitem(last=False)
            return False
        except tg.TelegramError as exc:
            raise service_error(exc, "sendMessageDraft") from exc
        return True

    async def show(
        self, chat_id: int, thread_id: int | None, draft_id: int, text: str, *, markdown: bool
    ) -> None:
        """Show the next draft.

        Raises:
            ServiceError: it was not shown; the next step shows the text again.
        """
        try:
            await self._show(chat_id, thread_id, draft_id, text, markdown=markdown)
        except tg.TelegramError as exc:
            raise service_error(exc, "sendMessageDraft") from exc

    async def _show(
        self, chat_id: int, thread_id: int | None, draft_id: int, text: str, *, markdown: bool
    ) -> None:
        pieces = render_pieces(text, markdown=markdown, limit=MAX_LENGTH)
        if not pieces:
            raise RequestRejectedError("telegram", "cannot show an empty draft")
        piece = pieces[0]  # the answer's first message; the rest follow it when sent
        try:
            await self._send(chat_id, thread_id, draft_id, piece)
        except tg.BadRequest as exc:
            if not piece.entities or not is_entity_error(exc):
                raise
            await self._send(chat_id, thread_id, draft_id, Piece(piece.text))

    async def _send(
        self, chat_id: int, thread_id: int | None, draft_id: int, piece: Piece
    ) -> None:
        """One call, within the chat's flood limits; a 429 pauses the chat and raises (a
        draft is not worth waiting for: the next step shows more anyway)."""
        key = str(chat_id)
        await self._limiter.wait(key)
        ensure_claims_live()
        try:
            await self._bot.send_message_draft(
                chat_id,
                draft_id,
                piece.text,
                message_thread_id=thread_id,
                entities=piece.telegram_entities(),
            )
        except tg.NetworkError as exc:
            lost = claim_lost_cause(exc)  # refused at its first byte (claims_trace)
            if lost is not None:
                raise lost from None
            raise
        except tg.RetryAfter as exc:
            self._limiter.pause(key, retry_after_seconds(exc))
            raise
