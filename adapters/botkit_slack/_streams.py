"""Slack's native streams: an answer shown as it is written, in standard Markdown.

``chat.startStream`` posts the message (in a thread: streamed messages answer someone),
``chat.appendStream`` adds to it (Tier 4, where ``chat.update`` is Tier 3) and
``chat.stopStream`` ends it. All three take ``markdown_text``, standard Markdown, so no
mrkdwn conversion; a stream's message is edited with ``chat.update``'s ``markdown_text``.

The stream's ``ts`` is the message from the start: the outbox records it at once, so a
crash mid-stream ends with that message ended (:meth:`Streams.close`) and edited.

Where Slack refuses to stream (a channel type, a workspace or API that does not know the
method) the refusal is remembered and answers there post and edit as before. A stream
Slack ended itself (its timeout: ``message_not_in_streaming_state``) or the user stopped
(``stopped_by_user``) is no failure: the same message is edited with ``chat.update``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from botkit import RequestRejectedError
from botkit_slack._api import SlackAPI

__all__ = ["CLOSED", "REFUSED_EVERYWHERE", "REFUSED_HERE", "Streams"]

log = logging.getLogger("botkit_slack")

#: ``chat.startStream`` errors meaning this channel does not stream (remembered for it)
REFUSED_HERE = frozenset(
    {
        "channel_type_not_supported",
        "method_not_supported_for_channel_type",
        "missing_recipient_team_id",
        "missing_recipient_user_id",
        "messages_tab_disabled",
        "restricted_action_non_threadable_channel",
        "restricted_action_thread_only_channel",
    }
)
#: errors meaning no stream anywhere (an API without the methods; remembered for all)
REFUSED_EVERYWHERE = frozenset({"unknown_method", "not_allowed_token_type", "method_deprecated"})
#: appends or stops to a stream that already ended: its message is edited instead
CLOSED = frozenset({"message_not_in_streaming_state", "stopped_by_user"})
_MEMORY = 10_000

Key = tuple[str, str]  # (channel, ts)


class Streams:
    """The adapter's native streams: which are open, where Slack refused them."""

    def __init__(self) -> None:
        self._refused: OrderedDict[str, None] = OrderedDict()
        self._nowhere = False
        self._open: OrderedDict[Key, dict[str, Any] | None] = OrderedDict()  # their metadata
        self._markdown: OrderedDict[Key, None] = OrderedDict()  # stream messages

    def allowed(self, channel: str) -> bool:
        """Whether answers in ``channel`` may stream (no refusal remembered)."""
        return not self._nowhere and channel not in self._refused

    def is_stream_message(self, channel: str, ts: str) -> bool:
        """Whether a message was a native stream (its text is standard Markdown)."""
        return (channel, ts) in self._markdown

    async def start(
        self,
        api: SlackAPI,
        channel: str,
        thread_ts: str,
        markdown: str,
        *,
        user: str | None,
        team: str | None,
        metadata: dict[str, Any],
    ) -> str | None:
        """Start a stream; its ``ts``, or ``None`` where Slack refused (remembered when
        the refusal is about the channel or the API, not this one message).

        Raises:
            ServiceError: rate limits, network trouble, a refused token.
        """
        try:
            ts = await api.start_stream(
                channel, thread_ts, markdown, recipient_user_id=user, recipient_team_id=team
            )
        except RequestRejectedError as exc:
            if exc.code in REFUSED_EVERYWHERE:
                self._nowhere = True
            elif exc.code in REFUSED_HERE:
                _remember(self._refused, channel, None)
            log.info("slack: no native stream in %s (%s); posting and editing", channel, exc.code)
            return None
        _remember(self._open, (channel, ts), metadata)
        _remember(self._markdown, (channel, ts), None)
        return ts

    async def show(self, api: SlackAPI, channel: str, ts: str, shown: str, text: str) -> None:
        """Make the stream's message show ``text``: appended while it extends what it
        shows, else (or once the stream ended) by ending it and editing the message.

        Raises:
            ServiceError: the message could not be changed.
        """
        if (channel, ts) in self._open and text.startswith(shown):
            if text == shown:
                return
            try:
                await api.append_stream(channel, ts, text[len(shown) :])
                return
            except RequestRejectedError as exc:
                if exc.code not in CLOSED:
                    raise
                self._open.pop((channel, ts), None)
                log.info(
                    "slack: the stream %s in %s ended (%s); editing it", ts, channel, exc.code
                )
        await self.edit(api, channel, ts, text)

    async def stop(self, api: SlackAPI, channel: str, ts: str, shown: str, text: str) -> None:
        """End the stream showing ``text``: with its last part appended by the stop, or
        (when it does not extend what it shows, or it ended already) with an edit.

        Raises:
            ServiceError: the message could not be made to show ``text``.
        """
        if (channel, ts) in self._open and text.startswith(shown):
            metadata = self._open.get((channel, ts))
            try:
                await api.stop_stream(channel, ts, text[len(shown) :], metadata=metadata)
                self._open.pop((channel, ts), None)
                return
            except RequestRejectedError as exc:
                if exc.code not in CLOSED:
                    raise
                self._open.pop((channel, ts), None)
        await self.edit(api, channel, ts, text)

    async def close(self, api: SlackAPI, channel: str, ts: str) -> None:
        """End a stream whoever wrote it left open, adding nothing; an ended one is fine.

        Raises:
            ServiceError: Slack could not be asked.
        """
        _remember(self._markdown, (channel, ts), None)
        metadata = self._open.pop((channel, ts), None)
        try:
            await api.stop_stream(channel, ts, metadata=metadata)
        except RequestRejectedError as exc:
            if exc.code not in CLOSED:
                raise

    async def edit(self, api: SlackAPI, channel: str, ts: str, text: str) -> None:
        """Replace a stream message's text (ending the stream first if it is open).

        Raises:
            ServiceError: the message could not be changed.
        """
        if (channel, ts) in self._open:
            await self.close(api, channel, ts)
        await api.update_markdown(channel, ts, text)


def _remember(memory: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    memory.pop(key, None)
    memory[key] = value
    while len(memory) > _MEMORY:
        memory.popitem(last=False)
