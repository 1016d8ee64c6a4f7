"""``SlackAdapter``: Slack through slack-bolt's ``AsyncApp``, in Socket Mode or over HTTP.

Every event runs through bolt with ``process_before_response=True``: the listener hands
the message to ``inbox.accept`` and bolt's acknowledgement (the HTTP 200, or the Socket
Mode envelope ack) only goes out after that returned. If ``accept`` raises, bolt answers
500 (HTTP) or sends no ack (Socket Mode), and Slack delivers the event again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_sdk.web.async_client import AsyncWebClient

from botkit import (
    Adapter,
    Attachment,
    Capabilities,
    ConversationRef,
    Inbox,
    KeyValueState,
    Markup,
    Message,
    NativeStream,
    Reply,
    RequestRejectedError,
    SentMessage,
    ServiceUnavailableError,
    StoreError,
    WebhookGate,
    claims_trace,
    read_webhook_body,
    refuse_request,
)
from botkit_slack._api import Identity, SlackAPI
from botkit_slack._events import Inbound, ThreadMemory
from botkit_slack._files import download
from botkit_slack._mrkdwn import render_pieces
from botkit_slack._signature import SignatureCheck
from botkit_slack._streams import Streams
from botkit_slack._uploads import upload
from botkit_slack.settings import SlackSettings

__all__ = ["EDIT_INTERVAL", "MAX_TEXT", "STREAM_INTERVAL", "SlackAdapter"]

DELIVERY_EVENT = "botkit_reply"  # the metadata event type of every reply botkit posts
FIND_SENT_LOOKBACK = 50  # newest messages searched for a reply an earlier try posted
# how long the memo of what one delivery posted is kept: long after the outbox stopped
# retrying it (one memo per reply: pruned, not piled up)
DELIVERY_MEMO_TTL = timedelta(days=30)
log = logging.getLogger("botkit_slack")

#: The longest rendered text one message carries. Slack truncates ``text`` past 40,000
#: characters but asks apps to keep messages under 4,000; pieces this size read well.
MAX_TEXT = 3900
#: ``chat.update`` is Tier 3 (about 50 calls a minute per workspace): one edit per
#: 1.5 s keeps a stream well inside it, with room for a second one at the same time.
EDIT_INTERVAL = 1.5
#: ``chat.appendStream`` is Tier 4 (about 100 calls a minute): one step per 0.75 s.
STREAM_INTERVAL = 0.75
#: The most messages :meth:`SlackAdapter.history` reads back.
HISTORY_LIMIT = 1000
_CONNECT_TIMEOUT = 30.0
#: How often (seconds) the Socket Mode connection is pinged and, once lost, tried again.
SOCKET_PING_INTERVAL = 10.0
_FORWARDED_HEADERS = ("Content-Type", "X-Slack-Retry-Num", "X-Slack-Retry-Reason")
_MEMORY = 10_000  # entries kept in the adapter's small in-memory maps


class SlackAdapter(Adapter):
    """Slack: DMs, mentions and threads, acknowledged after the inbox committed them.

    Args:
        name: the config key it was enabled under; the ``channel`` of its messages.
        settings: the ``[adapters.NAME]`` table.

    Raises:
        ConfigError: the settings do not fit together (Socket Mode without an app token,
            HTTP without a signing secret...).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        edits=True,
        threads=True,
        max_length=MAX_TEXT,
        markup="mrkdwn",
        edit_interval=EDIT_INTERVAL,
        typing=True,
        native_streams=True,  # chat.startStream, in threads
        stream_interval=STREAM_INTERVAL,
    )
    settings_class: ClassVar[type[Any] | None] = SlackSettings

    def __init__(self, name: str, settings: SlackSettings) -> None:
        super().__init__(name)
        settings.check(f"adapters.{name}")
        self.settings = settings
        self._verifier = (
            SignatureCheck(settings.signing_secret.reveal())
            if settings.signing_secret is not None
            else None
        )
        self._session: aiohttp.ClientSession | None = None
        self._api: SlackAPI | None = None
        self._app: AsyncApp | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._socket_watch: asyncio.Task[None] | None = None
        self._inbox: Inbox | None = None
        self._state: KeyValueState | None = None
        self._threads: ThreadMemory | None = None
        self._inbound: Inbound | None = None
        self._me: Identity | None = None
        self._last_inbound: dict[str, tuple[str, str]] = {}
        # messages given the typing reaction: whether it was really added
        self._reacted: dict[tuple[str, str], bool] = {}
        self._markup: dict[tuple[str, str], Markup] = {}
        self._streams = Streams()
        self._gate = WebhookGate(f"slack {name} events")

    @property
    def identity(self) -> Identity | None:
        """The bot's ids from ``auth.test``, once started."""
        return self._me

    # lifecycle

    def web_routes(self) -> Sequence[web.RouteDef]:
        """The Events API endpoint (``events_path``), in HTTP mode only."""
        if self.settings.transport != "http":
            return ()
        return [web.post(self.settings.events_path, self._handle_http)]

    async def start(self, inbox: Inbox) -> None:
        """Check the token, then connect Socket Mode or open the HTTP endpoint.

        Raises:
            AuthenticationError: Slack refused the bot or app token.
            ServiceError: Slack could not be reached.
        """
        self._inbox = inbox
        self._state = inbox.state(self.name)
        self._threads = ThreadMemory(self._state)
        # every request checks, as its first bytes are written, that the claim it is sent
        # under is live: a process frozen mid-send posts nothing once it wakes
        self._session = aiohttp.ClientSession(trace_configs=[claims_trace()])
        try:
            report = inbox.report(self.name)
            self._api = api = SlackAPI(self.settings, self._session, on_wait=report.rate_limited)
            self._me = me = await api.auth_test()
            self._inbound = Inbound(self.name, self.settings, api, me, self._threads, report)
            self._app = self._build_app(me)
            if self.settings.transport == "socket":
                await self._connect_socket(api)
        except BaseException:
            await self.stop()
            raise
        self._gate.open()
        log.info("slack: %s started as %s (%s)", self.name, me.user_id, self.settings.transport)

    async def stop_intake(self) -> None:
        """Disconnect Socket Mode, or answer the events endpoint 503; sending keeps working.

        An event being accepted over HTTP right now finishes first. Slack delivers again
        whatever it did not see acknowledged.
        """
        await self._gate.close()
        watch, self._socket_watch = self._socket_watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close_async()  # type: ignore[no-untyped-call]

    async def stop(self) -> None:
        """Disconnect Socket Mode and close the HTTP session; accepted messages are kept."""
        await self.stop_intake()
        self._app = None
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _build_app(self, me: Identity) -> AsyncApp:
        token = self.settings.bot_token.reveal()

        async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
            # from the auth.test made at start: no Web API call (that could fail and make
            # bolt acknowledge an event it never handed to us) while Slack waits for an ack
            return AuthorizeResult(
                enterprise_id=enterprise_id,
                team_id=team_id or me.team_id,
                bot_user_id=me.user_id,
                bot_id=me.bot_id,
                bot_token=token,
            )

        bolt_log = logging.getLogger("botkit_slack.bolt")
        # AsyncApp reads SLACK_BOT_TOKEN itself and, since a client is passed, warns that
        # the token "will be unused"; it is used (through authorize), so mute that notice
        was_disabled, bolt_log.disabled = bolt_log.disabled, True
        try:
            app = AsyncApp(
                name=f"botkit-{self.name}",
                logger=bolt_log,
                client=AsyncWebClient(base_url=self.settings.api_url, session=self._session),
                authorize=authorize,
                signing_secret="",
                # HTTP requests are verified in _handle_http, against the raw bytes
                request_verification_enabled=False,
                # run the listener (inbox.accept) before answering: ack only after commit
                process_before_response=True,
            )
        finally:
            bolt_log.disabled = was_disabled
        app.event(re.compile(r".*"))(self._on_event)
        app.command(self.settings.slash_command)(self._on_command)
        return app

    async def _connect_socket(self, api: SlackAPI) -> None:
        assert self._app is not None
        assert self.settings.app_token is not None
        app_token = self.settings.app_token.reveal()
        handler = AsyncSocketModeHandler(
            self._app,
            app_token=app_token,
            logger=logging.getLogger("botkit_slack.socket"),
            web_client=api.client,
            ping_interval=SOCKET_PING_INTERVAL,
        )
        self._socket = handler
        # ask for the URL here so a refused app token fails start() with a clear error;
        # slack_sdk's own connect() would retry it forever
        handler.client.wss_uri = await api.socket_url(app_token)
        try:
            await asyncio.wait_for(
                handler.connect_async(),  # type: ignore[no-untyped-call]
                _CONNECT_TIMEOUT,
            )
        except TimeoutError as exc:
            raise ServiceUnavailableError(
                "slack", "could not open the Socket Mode connection"
            ) from exc
        self._socket_watch = asyncio.create_task(
            _renew_refused_url(handler), name=f"botkit-{self.name}-socket-watch"
        )

    # receiving

    async def _handle_http(self, request: web.Request) -> web.StreamResponse:
        """Size, then signature (in every state of the adapter), then the body, then the
        gate (see :mod:`botkit.webhooks`); only then does bolt see the request."""
        what = self._gate.what
        raw = await read_webhook_body(request, log, what)
        if not self._signed(raw, request):
            log.warning("%s: refused a request with a bad or stale signature", what)
            return web.Response(status=401, text="invalid signature")
        bolt_request = self._bolt_request(raw, request)
        async with self._gate.admit(log):
            app = self._app
            assert app is not None  # the gate is open only while the app exists
            retry = request.headers.get("X-Slack-Retry-Num")
            if retry is not None:
                log.debug(
                    "slack: delivery retry %s (%s)",
                    retry,
                    request.headers.get("X-Slack-Retry-Reason", "?"),
                )
            response = await app.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)

    def _bolt_request(self, raw: bytes, request: web.Request) -> AsyncBoltRequest:
        """The request as bolt reads it; 400 when bolt could not read it."""
        what = self._gate.what
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise refuse_request(
                log, request, what, web.HTTPBadRequest, "the body is not UTF-8"
            ) from None
        headers: dict[str, str | Sequence[str]] = {
            h: request.headers[h] for h in _FORWARDED_HEADERS if h in request.headers
        }
        content_type = request.headers.get("Content-Type", "").split(";")[0] or None
        try:  # bolt's own parser, as its request does it: refuse what bolt cannot read
            parsed: object = parse_body(body, content_type)
        except (ValueError, RecursionError):
            raise refuse_request(
                log, request, what, web.HTTPBadRequest, "the body is not JSON"
            ) from None
        if not isinstance(parsed, dict):
            raise refuse_request(
                log, request, what, web.HTTPBadRequest, "the body is not a JSON object"
            )
        if not _bolt_can_route(parsed):
            raise refuse_request(
                log, request, what, web.HTTPBadRequest, "the body is not a Slack request"
            )
        try:
            return AsyncBoltRequest(body=body, query=request.query_string, headers=headers)
        except Exception:  # an object shaped unlike anything Slack sends
            raise refuse_request(
                log, request, what, web.HTTPBadRequest, "the body is not a Slack request"
            ) from None

    def _signed(self, raw: bytes, request: web.Request) -> bool:
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if self._verifier is None or not signature:
            return False
        return self._verifier.valid(raw, timestamp, signature)

    async def _on_event(self, body: dict[str, Any], ack: AsyncAck) -> None:
        assert self._inbound is not None
        message = await self._inbound.from_event(body)
        if message is not None:
            await self._accept(message)  # raises: no ack, Slack delivers again
        await ack()

    async def _on_command(self, body: dict[str, Any], ack: AsyncAck) -> None:
        assert self._inbound is not None
        message = await self._inbound.from_command(body)
        if message is None:
            await ack(text="Sorry, I am not available here.")
            return
        accepted = await self._accept(message)
        if accepted:
            await ack(text="Working on it…")
        else:
            await ack()

    async def _accept(self, message: Message) -> bool:
        """Hand a message to the inbox; whether it was new."""
        assert self._inbox is not None
        assert self._threads is not None
        accepted = await self._inbox.accept(message)
        conversation = message.conversation
        ts = message.metadata.get("ts")
        if isinstance(ts, str):
            _remember(self._last_inbound, conversation.key, (conversation.chat_id, ts))
        if accepted.duplicate:
            log.debug("slack: %s was already accepted", message.external_id)
            return False
        if conversation.thread_id and message.metadata.get("channel_type") != "im":
            await self._threads.add(conversation.chat_id, conversation.thread_id)
        return True

    # sending

    def _require_api(self) -> SlackAPI:
        if self._api is None or self._state is None:
            raise ServiceUnavailableError("slack", "the Slack adapter is not started")
        return self._api

    async def send(
        self, conversation: ConversationRef, reply: Reply, *, delivery_id: str
    ) -> SentMessage:
        """Post a reply into the conversation's thread, split to ``MAX_TEXT`` in order,
        then share its files (a spoken answer's audio) with the external upload flow.

        Pieces and files already posted by an earlier try of the same ``delivery_id`` are
        not posted again.

        Raises:
            RateLimitError: Slack asked to wait longer than ``max_rate_limit_wait``.
            RequestRejectedError: ``ok: false`` (``channel_not_found``, ``not_in_channel``…),
                logged with the conversation; retrying will not help.
            AuthenticationError: the bot token was refused.
            ServiceUnavailableError: network trouble or a 5xx.
        """
        api = self._require_api()
        assert self._state is not None
        pieces = render_pieces(reply.text, reply.markup, MAX_TEXT)
        files = reply.attachments
        if not pieces and not files:
            raise RequestRejectedError("slack", "the reply is empty", code="no_text")
        channel, thread = conversation.chat_id, conversation.thread_id
        key = f"delivery:{delivery_id}"
        try:
            posted = [str(ts) for ts in (await self._state.get(key, None) or [])]
        except StoreError as exc:  # what an earlier try posted is unknown: post nothing now
            raise ServiceUnavailableError(
                "slack", f"cannot tell what an earlier try posted: {exc}"
            ) from exc
        try:
            for index in range(len(posted), len(pieces)):
                # the delivery id travels with the message, so a resend after a crash
                # can find it (find_sent) instead of posting it again
                metadata = {
                    "event_type": DELIVERY_EVENT,
                    "event_payload": {
                        "delivery_id": delivery_id,
                        "piece": index,
                        "of": len(pieces),
                        "files": len(files),
                    },
                }
                posted.append(await api.post(channel, pieces[index], thread, metadata=metadata))
                await self._note_posted(key, posted)
            # then the files, each once: their ids follow the pieces' ts in the memo
            session = self._session
            assert session is not None
            for attachment in files[len(posted) - len(pieces) :]:
                posted.append(await upload(api, session, attachment, channel, thread))
                await self._note_posted(key, posted)
        except RequestRejectedError as exc:
            log.warning(
                "slack: a reply to %s was refused (%s); not retrying", conversation.key, exc.code
            )
            raise
        # a file cannot show text: edits and ids stop at the text's pieces
        parts = tuple(posted[: len(pieces)] or posted)
        _remember(self._markup, (channel, parts[0]), reply.markup)
        await self._typing_done(reply.reply_to)
        return SentMessage(conversation, parts[-1], reply.text, parts)

    async def _note_posted(self, key: str, posted: list[str]) -> None:
        assert self._state is not None
        try:
            await self._state.set(key, posted, ttl=DELIVERY_MEMO_TTL)
        except StoreError as exc:  # posted all the same: only a later retry's memo
            log.warning("slack: could not note the pieces posted so far: %s", exc)

    async def find_sent(
        self, conversation: ConversationRef, delivery_id: str
    ) -> SentMessage | None:
        """The pieces an earlier try of ``delivery_id`` posted, found by their message
        metadata among the conversation's newest messages; ``None`` unless every piece
        is there.

        Raises:
            ServiceError: Slack could not be asked (the outbox tries again later).
        """
        api = self._require_api()
        try:
            messages = await api.recent_with_metadata(
                conversation.chat_id, conversation.thread_id, FIND_SENT_LOOKBACK
            )
        except RequestRejectedError as exc:  # no history scope, say: it cannot tell
            log.warning("slack: cannot look for an earlier post (%s); sending again", exc)
            return None
        pieces: dict[int, dict[str, Any]] = {}
        expected = files = 0
        for message in messages:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") != DELIVERY_EVENT:
                continue
            if payload.get("delivery_id") != delivery_id:
                continue
            pieces[int(payload.get("piece", 0))] = message
            expected = int(payload.get("of", 1))
            files = int(payload.get("files", 0))
        if not pieces or len(pieces) < expected:
            return None
        ordered = [pieces[i] for i in sorted(pieces)]
        parts = tuple(str(m["ts"]) for m in ordered)
        if files and not await self._files_shared(delivery_id, list(parts), files):
            return None  # the text is there, a file is not: send() shares the rest
        text = "\n\n".join(str(m.get("text") or "") for m in ordered)
        return SentMessage(conversation, parts[-1], text, parts)

    async def _files_shared(self, delivery_id: str, parts: list[str], files: int) -> bool:
        """Whether every file of a reply whose text is all posted was shared too; if not,
        the memo is made to hold the text's pieces, so ``send`` shares only the files."""
        assert self._state is not None
        key = f"delivery:{delivery_id}"
        try:
            posted = [str(ts) for ts in (await self._state.get(key, None) or [])]
        except StoreError as exc:
            raise ServiceUnavailableError(
                "slack", f"cannot tell what an earlier try posted: {exc}"
            ) from exc
        if len(posted) >= len(parts) + files:
            return True
        if len(posted) < len(parts):
            await self._note_posted(key, parts)
        return False

    async def edit(self, sent: SentMessage, text: str) -> SentMessage:
        """Show ``text`` in a message sent earlier: changed pieces updated, new ones posted
        into the thread, pieces no longer needed deleted.

        Raises:
            ServiceError: as for :meth:`send`.
        """
        api = self._require_api()
        conversation = sent.conversation
        channel = conversation.chat_id
        parts = list(sent.parts or (sent.external_id,))
        if self._streams.is_stream_message(channel, parts[0]) and text.strip():
            # a native stream's message: standard Markdown, one message (it was cut to one)
            await self._streams.edit(api, channel, parts[0], text)
            return SentMessage(conversation, parts[0], text, (parts[0],))
        markup = self._markup.get((channel, parts[0]), "markdown")
        new = render_pieces(text, markup, MAX_TEXT)
        if not new:
            return sent
        old = render_pieces(sent.text, markup, MAX_TEXT)
        shown: list[str] = []
        for i, piece in enumerate(new):
            if i >= len(parts):
                shown.append(await api.post(channel, piece, conversation.thread_id))
                continue
            if i >= len(old) or old[i] != piece:
                await api.update(channel, parts[i], piece)
            shown.append(parts[i])
        for ts in parts[len(new) :]:
            try:
                await api.delete(channel, ts)
            except RequestRejectedError as exc:
                log.info("slack: could not delete a surplus piece in %s: %s", channel, exc.code)
        _remember(self._markup, (channel, shown[0]), markup)
        return SentMessage(conversation, shown[-1], text, tuple(shown))

    async def start_stream(
        self, answering: Message, reply: Reply, *, delivery_id: str
    ) -> NativeStream | None:
        """Start a native stream (``chat.startStream``) of a Markdown answer in a thread;
        ``None`` elsewhere (a DM's top level, where answers are not threaded; a bot's
        message; where Slack refused to stream before), so the answer posts and edits.

        The stream is the message: its ``ts`` is returned as the stream's message, for
        the outbox to record at once.

        Raises:
            ServiceError: Slack could not be asked (rate limits, the network).
        """
        api = self._require_api()
        conversation = answering.conversation
        channel, thread = conversation.chat_id, conversation.thread_id
        if (
            reply.markup != "markdown"
            or not thread
            or answering.sender.is_bot
            or not reply.text.strip()
            or not self._streams.allowed(channel)
        ):
            return None
        team = answering.metadata.get("team_id") or (self._me.team_id if self._me else None)
        metadata = {
            "event_type": DELIVERY_EVENT,
            "event_payload": {"delivery_id": delivery_id, "piece": 0, "of": 1},
        }
        ts = await self._streams.start(
            api,
            channel,
            thread,
            reply.text,
            user=answering.sender.id,
            team=team if isinstance(team, str) else None,
            metadata=metadata,
        )
        if ts is None:
            return None
        await self._typing_done(reply.reply_to)
        sent = SentMessage(conversation, ts, reply.text, (ts,))
        return NativeStream(conversation, ts, reply.text, sent)

    async def append_stream(self, stream: NativeStream, text: str) -> NativeStream:
        """Show ``text`` on the stream: the new part appended (``chat.appendStream``), or,
        once Slack ended the stream, the message edited.

        Raises:
            ServiceError: as for :meth:`send`.
        """
        channel, ts = stream.conversation.chat_id, stream.stream_id
        await self._streams.show(self._require_api(), channel, ts, stream.text, text)
        sent = SentMessage(stream.conversation, ts, text, (ts,))
        return dataclasses.replace(stream, text=text, message=sent)

    async def stop_stream(self, stream: NativeStream, text: str) -> SentMessage:
        """End the stream (``chat.stopStream``, with the reply's delivery metadata) showing
        ``text``.

        Raises:
            ServiceError: as for :meth:`send`.
        """
        channel, ts = stream.conversation.chat_id, stream.stream_id
        await self._streams.stop(self._require_api(), channel, ts, stream.text, text)
        return SentMessage(stream.conversation, ts, text, (ts,))

    async def close_stream(self, sent: SentMessage) -> None:
        """End a stream left open (``chat.stopStream`` without text); one already ended
        is fine.

        Raises:
            ServiceError: as for :meth:`send`.
        """
        api = self._require_api()
        await self._streams.close(api, sent.conversation.chat_id, sent.external_id)

    async def history(
        self, conversation: ConversationRef, *, since: datetime
    ) -> Sequence[Message]:
        """What was said in a channel (or, for a thread, in that thread) since ``since``,
        oldest first: people and bots, the bot itself included (as ``"assistant"``).

        At most the newest ``HISTORY_LIMIT`` messages. Needs the ``channels:history``
        scope (``groups:``, ``im:``, ``mpim:history`` for other conversations).

        Raises:
            RequestRejectedError: Slack refused (``not_in_channel``, ``missing_scope``).
            ServiceError: as for :meth:`send`.
        """
        api = self._require_api()
        assert self._inbound is not None
        channel, thread = conversation.chat_id, conversation.thread_id
        items = await api.history(
            channel, oldest=since.timestamp(), thread_ts=thread, limit=HISTORY_LIMIT
        )
        found = [await self._inbound.from_history(channel, thread, item) for item in items]
        return [m for m in found if m is not None]

    async def fetch_attachment(
        self, attachment: Attachment, *, max_bytes: int | None = None
    ) -> bytes:
        """Download a file shared with a message (its ``url_private_download``, with the
        bot token; scope ``files:read``), up to ``max_bytes``.

        Raises:
            RequestRejectedError: not a Slack file, too large, access refused, or gone.
            ServiceError: Slack could not be reached, or rate limited the download.
        """
        if attachment.data is not None:
            return attachment.data
        if self._session is not None and not self._session.closed:
            return await download(self._session, self.settings, attachment, max_bytes)
        async with aiohttp.ClientSession() as session:  # before start, or after stop
            return await download(session, self.settings, attachment, max_bytes)

    async def typing(self, conversation: ConversationRef) -> None:
        """Put ``typing_reaction`` on the message being answered (once); ``send`` removes it."""
        target = self._last_inbound.get(conversation.key)
        name = self.settings.typing_reaction
        if self._api is None or not name or target is None or target in self._reacted:
            return
        self._reacted[target] = False  # before the call: the core may ask again meanwhile
        self._reacted[target] = await self._api.react(*target, name, add=True)

    async def _typing_done(self, reply_to: str | None) -> None:
        channel, _, ts = (reply_to or "").rpartition(":")
        target = (channel, ts)
        if self._api is None or not self._reacted.pop(target, False):
            return
        await self._api.react(channel, ts, self.settings.typing_reaction, add=False)


async def _renew_refused_url(handler: AsyncSocketModeHandler) -> None:
    """Make a reconnect that keeps failing ask Slack for a new URL.

    slack_sdk reconnects on its own (a closed link, a failed ping), but when the URL it
    was given refuses the WebSocket (Slack's URLs expire) it tries that same URL again
    forever. Down for two checks in a row (a reconnect takes milliseconds) means stuck:
    forgetting the URL makes its next try call ``apps.connections.open`` first.
    """
    client = handler.client
    down = 0
    while True:
        await asyncio.sleep(SOCKET_PING_INTERVAL)
        down = 0 if await client.is_connected() else down + 1
        if down >= 2 and client.wss_uri is not None:
            log.warning("slack: Socket Mode is still reconnecting; asking for a new URL")
            client.wss_uri = None


def _bolt_can_route(body: dict[str, Any]) -> bool:
    """Whether bolt's routing can read this body (its middleware raises on these shapes)."""
    event = body.get("event", {})
    return (
        isinstance(event, dict)
        and isinstance(event.get("type", ""), str)
        and isinstance(body.get("type", ""), str)
    )


def _remember(memory: dict[Any, Any], key: Any, value: Any) -> None:
    """Store in a small map that forgets its oldest entries."""
    memory.pop(key, None)
    memory[key] = value
    while len(memory) > _MEMORY:
        del memory[next(iter(memory))]
