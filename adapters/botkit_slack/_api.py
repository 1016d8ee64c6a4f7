"""The Web API calls the adapter makes, paced per channel, with errors mapped at the edge."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from botkit import RateLimitError, ServiceError, claim_lost_cause, ensure_claims_live
from botkit_slack._errors import SERVICE, service_error
from botkit_slack._pacing import Pacer, TooLong, WaitReport
from botkit_slack.settings import SlackSettings

__all__ = ["Identity", "SlackAPI"]

log = logging.getLogger("botkit_slack")

_NAME_TTL = 3600.0
_LOOKUP_TIMEOUT = 1.2  # lookups run before Slack's 3-second ack; at most two per event
_MAX_TRIES = 4


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the bot is, from ``auth.test``."""

    user_id: str
    bot_id: str | None
    team_id: str | None


class SlackAPI:
    """The adapter's only door to Slack's Web API.

    Every call goes through :meth:`call`: calls that share a method and a channel are
    serialised and spaced (``chat.postMessage`` at ``post_interval``), a 429 holds that
    method and channel back for its ``Retry-After``; a short hold is waited out and the
    call retried, a long one raises ``RateLimitError`` at once so the core reschedules.

    Args:
        settings: the adapter's settings.
        session: the aiohttp session slack_sdk sends with; the adapter owns it.
        on_wait: told of each wait before a call: its seconds, and ``reason="server"``
            when it waits out a 429's Retry-After, else ``"pacing"``.
    """

    def __init__(
        self,
        settings: SlackSettings,
        session: aiohttp.ClientSession,
        *,
        on_wait: WaitReport | None = None,
    ) -> None:
        self.settings = settings
        self.client = AsyncWebClient(
            token=settings.bot_token.reveal(),
            base_url=settings.api_url,
            timeout=max(1, round(settings.timeout)),
            session=session,
            logger=logging.getLogger("botkit_slack.web"),
        )
        self.pacer = Pacer(on_wait=on_wait)
        self._names: dict[str, tuple[str | None, bool, float]] = {}

    async def call(
        self,
        method: str,
        channel: str,
        send: Callable[[], Awaitable[AsyncSlackResponse]],
        *,
        max_wait: float | None = None,
    ) -> AsyncSlackResponse:
        """Make one Web API call under the pacing for (method, channel).

        Args:
            method: the Web API method, for pacing, logs and errors.
            channel: the channel the call is about (``""`` for none).
            send: makes the request (a slack_sdk client method, bound to its arguments).
            max_wait: the longest Retry-After to wait out here; the settings' by default.

        Raises:
            ServiceError: the mapped error.
        """
        key = (method, channel)
        limit = self.settings.max_rate_limit_wait if max_wait is None else max_wait
        interval = self.settings.post_interval if method == "chat.postMessage" else 0.0
        async with self.pacer.lock(key):
            for attempt in range(1, _MAX_TRIES + 1):
                try:
                    await self.pacer.wait_turn(key, interval=interval, max_wait=limit)
                except TooLong as held:
                    raise RateLimitError(
                        SERVICE,
                        f"{method} is rate limited for {held.wait:.1f} s more",
                        retry_after=held.wait,
                    ) from None
                ensure_claims_live()  # after the waits: a frozen process sends nothing
                try:
                    return await send()
                except Exception as exc:  # mapped right here, at the edge
                    lost = claim_lost_cause(exc)
                    if lost is not None:  # refused before a byte was written (claims_trace)
                        raise lost from exc
                    error = service_error(exc, method=method)
                    if not isinstance(error, RateLimitError) or attempt == _MAX_TRIES:
                        raise error from exc
                    wait = error.retry_after if error.retry_after is not None else 1.0
                    self.pacer.hold(key, wait)
                    if wait > limit:
                        raise error from exc
                    log.info("slack: %s on %s rate limited, waiting %.1f s", method, channel, wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def auth_test(self) -> Identity:
        """Check the bot token and learn the bot's ids."""
        response = await self.call("auth.test", "", self.client.auth_test)
        user_id = response.get("user_id")
        if not isinstance(user_id, str):
            raise service_error(
                ValueError("auth.test answered without user_id"), method="auth.test"
            )
        return Identity(
            user_id=user_id, bot_id=response.get("bot_id"), team_id=response.get("team_id")
        )

    async def socket_url(self, app_token: str) -> str:
        """A fresh Socket Mode WebSocket URL (``apps.connections.open``)."""
        response = await self.call(
            "apps.connections.open",
            "",
            lambda: self.client.apps_connections_open(app_token=app_token),
        )
        url = response.get("url")
        if not isinstance(url, str):
            raise service_error(
                ValueError("no url"), method="apps.connections.open"
            )  # pragma: no cover
        return url

    async def post(
        self,
        channel: str,
        text: str,
        thread_ts: str | None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Post one message (with ``metadata``: Slack's message metadata, an
        ``event_type`` and an ``event_payload``); its ``ts``."""
        response = await self.call(
            "chat.postMessage",
            channel,
            lambda: self.client.chat_postMessage(
                channel=channel, text=text, thread_ts=thread_ts, metadata=metadata
            ),
        )
        return str(response["ts"])

    async def recent_with_metadata(
        self, channel: str, thread_ts: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` messages of a channel (or of a thread), each with its
        metadata (``include_all_metadata``)."""
        method = "conversations.replies" if thread_ts else "conversations.history"

        def fetch() -> Any:
            common: dict[str, Any] = {
                "channel": channel,
                "limit": limit,
                "include_all_metadata": True,
            }
            if thread_ts:
                return self.client.conversations_replies(ts=thread_ts, **common)
            return self.client.conversations_history(**common)

        response = await self.call(method, channel, fetch)
        return [m for m in response.get("messages") or () if isinstance(m, dict)]

    async def update(self, channel: str, ts: str, text: str) -> None:
        """Replace a message's text."""
        await self.call(
            "chat.update",
            channel,
            lambda: self.client.chat_update(channel=channel, ts=ts, text=text),
        )

    async def update_markdown(self, channel: str, ts: str, markdown: str) -> None:
        """Replace a message's text with standard Markdown (``markdown_text``)."""
        await self.call(
            "chat.update",
            channel,
            lambda: self.client.chat_update(channel=channel, ts=ts, markdown_text=markdown),
        )

    async def start_stream(
        self,
        channel: str,
        thread_ts: str,
        markdown: str,
        *,
        recipient_user_id: str | None,
        recipient_team_id: str | None,
    ) -> str:
        """Start a native stream (``chat.startStream``) showing ``markdown``; its ``ts``."""
        response = await self.call(
            "chat.startStream",
            channel,
            lambda: self.client.chat_startStream(
                channel=channel,
                thread_ts=thread_ts,
                markdown_text=markdown,
                recipient_user_id=recipient_user_id,
                recipient_team_id=recipient_team_id,
            ),
        )
        return str(response["ts"])

    async def append_stream(self, channel: str, ts: str, markdown: str) -> None:
        """Append ``markdown`` to a stream (``chat.appendStream``)."""
        await self.call(
            "chat.appendStream",
            channel,
            lambda: self.client.chat_appendStream(channel=channel, ts=ts, markdown_text=markdown),
        )

    async def stop_stream(
        self,
        channel: str,
        ts: str,
        markdown: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """End a stream (``chat.stopStream``), appending ``markdown`` if given."""
        await self.call(
            "chat.stopStream",
            channel,
            lambda: self.client.chat_stopStream(
                channel=channel, ts=ts, markdown_text=markdown or None, metadata=metadata
            ),
        )

    async def delete(self, channel: str, ts: str) -> None:
        """Delete one of the bot's messages."""
        await self.call(
            "chat.delete", channel, lambda: self.client.chat_delete(channel=channel, ts=ts)
        )

    async def react(self, channel: str, ts: str, name: str, *, add: bool) -> bool:
        """Add or remove a reaction; whether it is now as asked. Never raises, never waits
        on a rate limit: a missing reaction is not worth delaying a reply."""
        method = "reactions.add" if add else "reactions.remove"
        call = self.client.reactions_add if add else self.client.reactions_remove
        try:
            await self.call(
                method, channel, lambda: call(channel=channel, timestamp=ts, name=name), max_wait=0
            )
        except ServiceError as exc:
            if exc.code in ("already_reacted", "no_reaction"):
                return True
            log.debug("slack: %s failed in %s: %s", method, channel, exc)
            return False
        return True

    async def history(
        self, channel: str, *, oldest: float, thread_ts: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """A channel's messages since ``oldest`` (``conversations.history``), or a thread's
        (``conversations.replies``), oldest first, at most the newest ``limit``.

        Needs the ``channels:history`` scope (``groups:``, ``im:``, ``mpim:`` for the
        other kinds of conversation).
        """
        method = "conversations.replies" if thread_ts else "conversations.history"
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        cap = limit if thread_ts is None else 10 * limit
        while True:
            page_cursor = cursor

            def fetch(page: str | None = page_cursor) -> Any:
                common: dict[str, Any] = {
                    "channel": channel,
                    "oldest": f"{oldest:.6f}",
                    "limit": min(200, limit),
                }
                if page:
                    common["cursor"] = page
                if thread_ts:
                    return self.client.conversations_replies(ts=thread_ts, **common)
                return self.client.conversations_history(**common)

            response = await self.call(method, channel, fetch)
            found.extend(m for m in response.get("messages") or () if isinstance(m, dict))
            meta = response.get("response_metadata") or {}
            cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
            # history pages go back in time (enough once full); replies go forward
            if not cursor or not response.get("has_more") or len(found) >= cap:
                break
        found.sort(key=lambda m: float(m.get("ts") or 0))
        return found[-limit:]

    def cached_name(self, user_id: str) -> str | None:
        """A display name already looked up, without asking Slack."""
        cached = self._names.get(user_id)
        return cached[0] if cached is not None else None

    async def user_info(self, user_id: str) -> tuple[str | None, bool]:
        """A user's display name (``None`` if unknown) and whether it is a bot; cached."""
        cached = self._names.get(user_id)
        if cached is not None and time.monotonic() - cached[2] < _NAME_TTL:
            return cached[0], cached[1]
        try:
            response = await asyncio.wait_for(
                self.call(
                    "users.info", "", lambda: self.client.users_info(user=user_id), max_wait=0
                ),
                _LOOKUP_TIMEOUT,
            )
        except (ServiceError, TimeoutError) as exc:
            log.debug("slack: no name for %s: %s", user_id, exc)
            return (cached[0], cached[1]) if cached is not None else (None, False)
        user: dict[str, Any] = response.get("user") or {}
        profile: dict[str, Any] = user.get("profile") or {}
        name = (
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
            or None
        )
        is_bot = bool(user.get("is_bot"))
        self._names[user_id] = (name, is_bot, time.monotonic())
        return name, is_bot

    async def bot_in_thread(self, channel: str, thread_ts: str, me: Identity) -> bool:
        """Whether the bot wrote in a thread (``conversations.replies``); ``False`` on errors."""
        try:
            response = await asyncio.wait_for(
                self.call(
                    "conversations.replies",
                    channel,
                    lambda: self.client.conversations_replies(
                        channel=channel, ts=thread_ts, limit=200
                    ),
                    max_wait=0,
                ),
                _LOOKUP_TIMEOUT,
            )
        except (ServiceError, TimeoutError) as exc:
            log.debug("slack: could not read thread %s in %s: %s", thread_ts, channel, exc)
            return False
        for message in response.get("messages") or ():
            if message.get("user") == me.user_id or (
                me.bot_id is not None and message.get("bot_id") == me.bot_id
            ):
                return True
        return False
