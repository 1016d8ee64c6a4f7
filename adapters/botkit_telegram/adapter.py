"""``TelegramAdapter``: Telegram private chats, groups and forum topics for botkit."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, ClassVar, TypeVar

from aiohttp import web
from telegram import BotCommand, LinkPreviewOptions, ReplyParameters
from telegram import Message as TgMessage
from telegram import error as tg
from telegram.constants import ChatAction

from botkit import (
    Adapter,
    Attachment,
    Capabilities,
    ChannelReport,
    CommandInfo,
    ConversationRef,
    Inbox,
    Message,
    NativeStream,
    Reply,
    RequestRejectedError,
    SentMessage,
    Singleton,
    claim_lost_cause,
    ensure_claims_live,
)
from botkit_telegram._drafts import Drafts, draft_id_of
from botkit_telegram._errors import (
    is_entity_error,
    is_not_modified,
    retry_after_seconds,
    service_error,
)
from botkit_telegram._files import download, uploader
from botkit_telegram._limits import FloodLimiter
from botkit_telegram._markdown import Piece, render_pieces
from botkit_telegram._polling import Poller
from botkit_telegram._request import make_bot
from botkit_telegram._settings import TelegramSettings, check_settings
from botkit_telegram._updates import Accept, BotIdentity, Ignore, Unsupported, read_update
from botkit_telegram._webhook import WebhookReceiver, derive_secret, ensure_webhook

__all__ = ["TelegramAdapter"]

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_LENGTH = 4096
_FLOOD_RETRIES = 3
_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")


class TelegramAdapter(Adapter):
    """Talks to Telegram's Bot API through python-telegram-bot.

    Receives by long polling (default) or a webhook mounted on botkit's web server, hands
    messages to the inbox and acknowledges them only after it accepted them. Sends Markdown
    replies as text plus entities, split at 4096 UTF-16 units, paced under Telegram's flood
    limits. Streamed answers show as drafts in private chats (``_drafts``) and as an edited
    message in groups.

    Args:
        name: the config key it was enabled under, the ``channel`` of its messages.
        settings: the parsed ``[adapters.NAME]`` table.
        limiter: the flood limiter (tests pass a faster one).

    Raises:
        ConfigError: an inconsistent setting, naming its key.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        edits=True,
        threads=True,
        max_length=MAX_LENGTH,
        markup="telegram-entities",
        edit_interval=1.0,
        typing=True,
        native_streams=True,  # drafts, in private chats
        stream_interval=1.0,  # a draft keeps the chat's message pace
    )
    settings_class: ClassVar[type[Any] | None] = TelegramSettings

    def __init__(
        self, name: str, settings: TelegramSettings, *, limiter: FloodLimiter | None = None
    ) -> None:
        super().__init__(name)
        check_settings(name, settings)
        self.settings = settings
        self._bot = make_bot(settings.api_url, settings.token, timeout=settings.request_timeout)
        self._limiter = limiter or FloodLimiter(max_wait=settings.max_flood_wait)
        self._limiter.on_wait = self._waited
        self._drafts = Drafts(self._bot, self._limiter)
        self._receiver = WebhookReceiver(
            settings.webhook_secret.reveal()
            if settings.webhook_secret
            else derive_secret(settings.token),
            self._receive,
        )
        self._inbox: Inbox | None = None
        self._report: ChannelReport | None = None
        self._me: BotIdentity | None = None
        self._poller: Poller | None = None
        self._polling: Singleton | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # message ids already sent for a split reply whose later pieces failed, so the
        # core's retry (same delivery id) does not send the first pieces twice
        self._partial: OrderedDict[str, list[int]] = OrderedDict()
        self._link_preview = LinkPreviewOptions(is_disabled=settings.disable_link_previews)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, inbox: Inbox) -> None:
        """Check the token (``getMe``), then start polling or make sure the webhook is set.

        Polling runs in one process cluster-wide: under the lease ``telegram:<bot id>``
        (``inbox.singleton``), so several processes on one database never call getUpdates
        at the same time (Telegram would answer 409 Conflict); another process takes
        over when this one stops or can no longer renew the lease.

        Raises:
            AuthenticationError: the token was refused.
            ServiceError: Telegram could not be reached or refused the webhook.
        """
        if self._poll_task is not None or self._receiver.gate.state == "open":
            raise RuntimeError(f"the {self.name} adapter is already started")
        if self.settings.group_context:
            log.warning(
                "adapters.%s.group_context is on: every group message reaches the core, "
                'marked metadata["addressed"] = False; only a plugin that skips those keeps '
                "the bot from answering them all",
                self.name,
            )
        self._inbox = inbox
        self._report = inbox.report(self.name)
        try:
            await self._bot.initialize()
            user = self._bot.bot
            self._me = BotIdentity(id=user.id, username=user.username or "")
            log.info(
                "Telegram adapter %r is @%s (%s mode)",
                self.name,
                user.username,
                self.settings.mode,
            )
            if self.settings.mode == "webhook":
                await ensure_webhook(
                    self._bot,
                    inbox.state(self.name),
                    url=self.settings.webhook_url or "",
                    secret=self._receiver.secret,
                )
                self._receiver.gate.open()
                return
            info = await self._bot.get_webhook_info()
            if info.url:
                log.warning(
                    "a Telegram webhook was set (%s); deleting it to poll instead", info.url
                )
                await self._bot.delete_webhook(drop_pending_updates=False)
        except tg.TelegramError as exc:
            await self._bot.shutdown()
            raise service_error(exc, "starting") from exc
        self._poller = Poller(
            self._bot,
            self._receive,
            poll_timeout=self.settings.poll_timeout,
            backoff_initial=self.settings.backoff_initial,
            backoff_max=self.settings.backoff_max,
        )
        self._polling = inbox.singleton(f"telegram:{self._me.id}", self._poller.run)
        self._poll_task = asyncio.create_task(self._polling.run(), name=f"{self.name}-polling")
        self._poll_task.add_done_callback(_report_end)

    async def stop_intake(self) -> None:
        """Stop polling, or answer webhook posts 503; sending keeps working until :meth:`stop`.

        A webhook post being accepted right now finishes first. The poller is cancelled:
        it confirms an offset only past accepted updates, so Telegram delivers anything
        unconfirmed again and the inbox recognises what it already stored.
        """
        await self._receiver.gate.close()
        task, self._poll_task = self._poll_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._poller = None

    async def stop(self) -> None:
        """Stop polling and release its lease (or refuse webhook posts), then close the
        connection.

        The webhook stays registered with Telegram, which queues updates until the next
        start.
        """
        await self.stop_intake()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._poll_task = None
        self._poller = None
        self._polling = None
        await self._bot.shutdown()

    def web_routes(self) -> Sequence[web.RouteDef]:
        """The webhook route (webhook mode only)."""
        if self.settings.mode != "webhook":
            return ()
        return (web.post(self.settings.webhook_path, self._receiver.handle),)

    @property
    def polling(self) -> Singleton | None:
        """The getUpdates loop's hold on its lease (polling mode, once started): its
        ``held`` says whether this process is the one polling."""
        return self._polling

    # -- receiving ---------------------------------------------------------------------

    async def _receive(self, update: dict[str, Any]) -> None:
        """Turn one update into an accepted message, an answer, or nothing.

        Raises only when the inbox did: then the update is not acknowledged.
        """
        if self._inbox is None or self._me is None:
            raise RuntimeError("the Telegram adapter is not started")
        try:
            decision = read_update(update, channel=self.name, me=self._me, settings=self.settings)
        except Exception:  # a payload we cannot read must not block the ones after it
            log.exception("could not read Telegram update %s; skipped", update.get("update_id"))
            return
        report = self._report
        if isinstance(decision, Ignore):
            log.debug("update %s ignored: %s", update.get("update_id"), decision.reason)
            if report is not None:
                report.ignored(decision.code)
        elif isinstance(decision, Unsupported):
            if report is not None:
                report.ignored("unsupported_content")  # answered, but not stored
            task = asyncio.create_task(self._answer_unsupported(decision))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(decision, Accept):
            await self._inbox.accept(decision.message)

    def _waited(self, seconds: float, reason: str) -> None:
        if self._report is not None:
            self._report.rate_limited(seconds, reason=reason)

    async def _answer_unsupported(self, what: Unsupported) -> None:
        text = self.settings.unsupported_reply
        reply_to = what.message_id if what.chat_type != "private" else None
        chat_id, thread_id = _ids(what.conversation)
        try:
            await self._send_piece(chat_id, thread_id, Piece(text), reply_to)
        except Exception as exc:  # flood control, a blocked bot: the answer is a courtesy
            log.info("could not answer a %s in chat %d: %s", what.kind, chat_id, exc)

    # -- sending -----------------------------------------------------------------------

    async def send(
        self, conversation: ConversationRef, reply: Reply, *, delivery_id: str
    ) -> SentMessage:
        """Send a reply, split into ordered pieces of at most 4096 UTF-16 units.

        Markdown is sent as text plus entities (no ``parse_mode``). In groups the first
        piece replies to the message it answers (``reply.reply_to``); replies go to the
        conversation's forum topic. Should Telegram still refuse a piece's entities, it is
        sent again without them (logged). A retry with the same ``delivery_id`` after a failure
        halfway resumes after the pieces already sent.

        Raises:
            RateLimitError: flood control asks for a wait longer than ``max_flood_wait``.
            RequestRejectedError: chat not found, bot blocked, an empty reply.
            AuthenticationError: the token was refused.
            ServiceUnavailableError: the network or Telegram failed.
        """
        if not reply.text.strip() and not reply.attachments:
            raise RequestRejectedError("telegram", "cannot send an empty message")
        pieces = (
            render_pieces(reply.text, markdown=reply.markup == "markdown", limit=MAX_LENGTH)
            if reply.text.strip()
            else []
        )
        chat_id, thread_id = _ids(conversation)
        reply_to = _message_id(reply.reply_to) if chat_id < 0 else None
        ids = list(self._partial.pop(delivery_id, []))
        try:
            await self._ready()
            for index in range(len(ids), len(pieces)):
                ids.append(
                    await self._send_piece(
                        chat_id, thread_id, pieces[index], reply_to if index == 0 else None
                    )
                )
            # then the files (a spoken reply's voice note), each once, as pieces are
            for attachment in reply.attachments[len(ids) - len(pieces) :]:
                upload = uploader(self._bot, attachment, chat_id, thread_id)
                ids.append((await self._call(chat_id, upload)).message_id)
        except tg.TelegramError as exc:
            self._remember_partial(delivery_id, ids)
            raise service_error(exc, "sendMessage") from exc
        except BaseException:
            self._remember_partial(delivery_id, ids)
            raise
        # a file's message cannot show text: edits and ids stop at the text's pieces
        parts = tuple(f"{chat_id}:{i}" for i in ids[: len(pieces)] or ids)
        return SentMessage(conversation, external_id=parts[-1], text=reply.text, parts=parts)

    async def fetch_attachment(
        self, attachment: Attachment, *, max_bytes: int | None = None
    ) -> bytes:
        """The bytes of a file a user sent (a voice note, a document): ``getFile``, then
        the download, at most 20 MB (what bots may download) or ``max_bytes``.

        Raises:
            RequestRejectedError: not a file of this adapter's messages (``code``
                ``"unknown_attachment"``), or too large (``"too_large"``).
            ServiceError: Telegram refused or could not be reached.
        """
        if attachment.data is not None:
            return attachment.data
        await self._ready()
        return await download(self._bot, attachment, max_bytes)

    async def edit(self, sent: SentMessage, text: str) -> SentMessage:
        """Show ``text`` (Markdown) in a message sent earlier: streaming's next step.

        Only the pieces whose rendering (text and entities) changed are edited; when the
        text grew past 4096 UTF-16 units, the overflow is sent as new messages. "Message is
        not modified" counts as success.

        Raises:
            ServiceError: as :meth:`send`.
        """
        if not text.strip():
            return sent
        chat_id, thread_id = _ids(sent.conversation)
        ids = [_message_id(p) or 0 for p in (sent.parts or (sent.external_id,))]
        old = render_pieces(sent.text, markdown=True, limit=MAX_LENGTH)
        new = render_pieces(text, markdown=True, limit=MAX_LENGTH)
        kept: list[int] = []
        try:
            await self._ready()
            for index, piece in enumerate(new):
                if index >= len(ids):
                    kept.append(await self._send_piece(chat_id, thread_id, piece, None))
                    continue
                if index >= len(old) or old[index] != piece:
                    await self._edit_piece(chat_id, ids[index], piece)
                kept.append(ids[index])
            for extra in ids[len(new) :]:
                await self._call(chat_id, partial(self._bot.delete_message, chat_id, extra))
        except tg.TelegramError as exc:
            raise service_error(exc, "editMessageText") from exc
        parts = tuple(f"{chat_id}:{i}" for i in kept)
        return SentMessage(sent.conversation, external_id=parts[-1], text=text, parts=parts)

    async def start_stream(
        self, answering: Message, reply: Reply, *, delivery_id: str
    ) -> NativeStream | None:
        """Show the answer so far as a draft, in a private chat; ``None`` elsewhere (and
        where Telegram refused drafts before), so the answer is posted and edited.

        The draft is no message: nothing is recorded, and the finished answer is sent as
        one message by the outbox (Telegram's apps then drop the draft).

        Raises:
            ServiceError: flood control or the network.
        """
        chat_id, thread_id = _ids(answering.conversation)
        if not reply.text.strip() or not self._drafts.allowed(chat_id):
            return None
        draft_id = draft_id_of(delivery_id)
        await self._ready()
        markdown = reply.markup == "markdown"
        if not await self._drafts.start(
            chat_id, thread_id, draft_id, reply.text, markdown=markdown
        ):
            return None
        return NativeStream(answering.conversation, str(draft_id), reply.text)

    async def append_stream(self, stream: NativeStream, text: str) -> NativeStream:
        """Show ``text`` (Markdown, the answer so far) as the next state of the draft.

        Raises:
            ServiceError: it was not shown (the next step shows the text again).
        """
        chat_id, thread_id = _ids(stream.conversation)
        await self._drafts.show(chat_id, thread_id, int(stream.stream_id), text, markdown=True)
        return dataclasses.replace(stream, text=text)

    async def typing(self, conversation: ConversationRef) -> None:
        """Show "typing…" for about five seconds; failures are logged, never raised."""
        if self._limiter.paused_for(conversation.chat_id) > 0:
            return
        chat_id, thread_id = _ids(conversation)
        try:
            await self._ready()
            await self._bot.send_chat_action(
                chat_id, ChatAction.TYPING, message_thread_id=thread_id
            )
        except tg.RetryAfter as exc:
            self._limiter.pause(conversation.chat_id, retry_after_seconds(exc))
        except tg.TelegramError as exc:
            log.debug("typing indicator in chat %d failed: %s", chat_id, exc.message)

    async def publish_commands(self, commands: Sequence[CommandInfo]) -> None:
        """Publish the command menu with ``setMyCommands``.

        Names Telegram cannot take (it allows 1-32 of ``a-z 0-9 _``) are left out with a
        warning; descriptions are cut to 256 characters.
        """
        menu: dict[str, BotCommand] = {}
        for command in commands:
            name = command.name.lstrip("/").lower()
            if not _COMMAND_NAME.match(name):
                log.warning("command %r cannot be published on Telegram; skipped", command.name)
                continue
            description = " ".join(command.description.split())[:256] or name
            menu.setdefault(name, BotCommand(name, description))
        try:
            await self._ready()
            await self._bot.set_my_commands(list(menu.values())[:100])
        except tg.TelegramError as exc:
            raise service_error(exc, "setMyCommands") from exc

    # -- helpers -----------------------------------------------------------------------

    async def _ready(self) -> None:
        """Open the connection when called before :meth:`start` (the outbox resuming)."""
        await self._bot.initialize()

    async def _send_piece(
        self, chat_id: int, thread_id: int | None, piece: Piece, reply_to: int | None
    ) -> int:
        """Send one piece; the message id."""
        quote = (
            ReplyParameters(reply_to, allow_sending_without_reply=True)
            if reply_to is not None
            else None
        )

        def send(formatted: bool) -> Awaitable[TgMessage]:
            return self._bot.send_message(
                chat_id,
                piece.text,
                entities=piece.telegram_entities() if formatted else None,
                message_thread_id=thread_id,
                link_preview_options=self._link_preview,
                reply_parameters=quote,
            )

        try:
            sent = await self._call(chat_id, partial(send, True))
        except tg.BadRequest as exc:
            if not piece.entities or not is_entity_error(exc):
                raise
            _log_unformatted(chat_id, exc)
            sent = await self._call(chat_id, partial(send, False))
        return sent.message_id

    async def _edit_piece(self, chat_id: int, message_id: int, piece: Piece) -> None:
        async def edit(formatted: bool) -> None:
            try:
                await self._call(
                    chat_id,
                    lambda: self._bot.edit_message_text(
                        piece.text,
                        chat_id=chat_id,
                        message_id=message_id,
                        entities=piece.telegram_entities() if formatted else None,
                        link_preview_options=self._link_preview,
                    ),
                )
            except tg.BadRequest as exc:
                if not is_not_modified(exc):
                    raise

        try:
            await edit(True)
        except tg.BadRequest as exc:
            if not piece.entities or not is_entity_error(exc):
                raise
            _log_unformatted(chat_id, exc)
            await edit(False)

    async def _call(self, chat_id: int, request: Callable[[], Awaitable[T]]) -> T:
        """Run one request within the flood limits; a short 429 pauses the chat and retries.

        Raises:
            RateLimitError: the wait is longer than ``max_flood_wait`` (from the limiter).
            telegram.error.TelegramError: any other failure, for the caller to map.
        """
        key = str(chat_id)
        for attempt in range(1, _FLOOD_RETRIES + 1):
            await self._limiter.wait(key)
            ensure_claims_live()  # after the wait: a frozen process sends nothing
            try:
                return await request()
            except tg.NetworkError as exc:
                lost = claim_lost_cause(exc)  # refused at its first byte (claims_trace)
                if lost is not None:
                    raise lost from None
                raise
            except tg.RetryAfter as exc:
                wait = retry_after_seconds(exc)
                self._limiter.pause(key, wait)
                log.warning("flood control in chat %s: paused for %g s", key, wait)
                if wait > self.settings.max_flood_wait or attempt == _FLOOD_RETRIES:
                    raise
        raise AssertionError("unreachable")

    def _remember_partial(self, delivery_id: str, ids: list[int]) -> None:
        if ids:
            self._partial[delivery_id] = ids
            while len(self._partial) > 1000:
                self._partial.popitem(last=False)


def _report_end(task: asyncio.Task[None]) -> None:
    """Polling only ends by cancellation; anything else would silence the bot, so say so."""
    if not task.cancelled() and task.exception() is not None:
        log.error("Telegram polling stopped", exc_info=task.exception())


def _log_unformatted(chat_id: int, exc: tg.BadRequest) -> None:
    """The last resort, said once per piece; Telegram's reason, never the reply's text."""
    log.warning(
        "Telegram refused a reply's formatting in chat %d (%s); sending it as plain text",
        chat_id,
        exc.message,
    )


def _ids(conversation: ConversationRef) -> tuple[int, int | None]:
    try:
        chat_id = int(conversation.chat_id)
        thread_id = int(conversation.thread_id) if conversation.thread_id else None
    except ValueError as exc:
        raise RequestRejectedError(
            "telegram", f"{conversation.key} is not a Telegram conversation"
        ) from exc
    return chat_id, thread_id


def _message_id(external_id: str | None) -> int | None:
    """The message id in an external id ``"<chat id>:<message id>"``."""
    if not external_id:
        return None
    tail = external_id.rpartition(":")[2]
    return int(tail) if tail.isdigit() else None
