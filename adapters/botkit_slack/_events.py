"""Which Slack events the bot answers, and the ``Message`` each one becomes."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from botkit import (
    Attachment,
    ChannelReport,
    ConversationRef,
    KeyValueState,
    Message,
    Sender,
)
from botkit_slack._api import Identity, SlackAPI
from botkit_slack._mrkdwn import inbound_text
from botkit_slack.settings import SlackSettings

__all__ = ["Inbound", "ThreadMemory", "external_id"]

log = logging.getLogger("botkit_slack")

#: Message subtypes a person's new message can carry; every other subtype
#: (``message_changed``, ``message_deleted``, ``channel_join``…) is ignored.
_PERSON_SUBTYPES = frozenset({None, "thread_broadcast", "file_share", "me_message"})


def external_id(channel: str, ts: str) -> str:
    """The one id of a Slack message: the same for its ``app_mention`` and ``message``
    events and for every retried delivery of either."""
    return f"{channel}:{ts}"


def _channel_type(channel: str) -> str:
    if channel.startswith("D"):
        return "im"
    if channel.startswith("G"):
        return "group"
    return "channel"


def _without_token(body: Mapping[str, Any]) -> dict[str, Any]:
    # the deprecated verification token travels in every payload; keep it out of the store
    return {k: v for k, v in body.items() if k != "token"}


class ThreadMemory:
    """Channel threads the bot takes part in: in memory, and in the inbox's state.

    Bounded, so that a long-running bot in busy channels does not grow without end: the
    process remembers the ``size`` threads it saw last either way, and the state keeps a
    thread for ``keep`` after the bot last joined it. A thread forgotten is asked about
    again (``conversations.replies``), once.
    """

    def __init__(
        self, state: KeyValueState, *, size: int = 10_000, keep: timedelta = timedelta(days=90)
    ) -> None:
        self._state = state
        self._size = size
        self._keep = keep
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._not: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def knows(self, channel: str, thread_ts: str) -> bool | None:
        """``True`` if the bot is in the thread, ``False`` if known not to be, else ``None``."""
        key = (channel, thread_ts)
        if key in self._known:
            self._known.move_to_end(key)
            return True
        if await self._state.get(f"thread:{channel}:{thread_ts}", False):
            self._remember(self._known, key)
            return True
        return False if key in self._not else None

    async def add(self, channel: str, thread_ts: str) -> None:
        """Remember that the bot is in a thread."""
        key = (channel, thread_ts)
        self._not.pop(key, None)
        if key in self._known:
            self._known.move_to_end(key)
            return
        self._remember(self._known, key)
        try:
            await self._state.set(f"thread:{channel}:{thread_ts}", True, ttl=self._keep)
        except Exception as exc:  # the memory still holds it; a restart may forget it
            log.warning("slack: could not persist thread %s in %s: %s", thread_ts, channel, exc)

    def add_negative(self, channel: str, thread_ts: str) -> None:
        """Remember that the bot is not in a thread (this process only)."""
        self._remember(self._not, (channel, thread_ts))

    def _remember(self, seen: OrderedDict[tuple[str, str], None], key: tuple[str, str]) -> None:
        seen[key] = None
        seen.move_to_end(key)
        while len(seen) > self._size:  # the least recently seen thread goes first
            seen.popitem(last=False)


class Inbound:
    """Turns Events API events and slash commands into messages, or ``None`` to ignore.

    Args:
        name: the adapter's name, the messages' channel.
        settings: the adapter's settings.
        api: for display names and thread membership.
        me: the bot's identity.
        threads: the threads the bot is in.
        report: where events that are not for the bot are counted.
    """

    def __init__(
        self,
        name: str,
        settings: SlackSettings,
        api: SlackAPI,
        me: Identity,
        threads: ThreadMemory,
        report: ChannelReport | None = None,
    ) -> None:
        self._report = report
        self._name = name
        self._settings = settings
        self._api = api
        self._me = me
        self._threads = threads

    def _ignore(self, code: str) -> None:
        """Count an event that is not for the bot (``code``: why)."""
        if self._report is not None:
            self._report.ignored(code)

    def _allowed(self, user: str, channel: str, is_dm: bool) -> bool:
        settings = self._settings
        if settings.allowed_users and user not in settings.allowed_users:
            return False
        return is_dm or not settings.allowed_channels or channel in settings.allowed_channels

    async def from_event(self, body: Mapping[str, Any]) -> Message | None:
        """The message an ``event_callback`` body carries, or ``None`` when it is not for us."""
        event = body.get("event")
        if not isinstance(event, Mapping) or event.get("type") not in ("message", "app_mention"):
            self._ignore("event_type")
            return None
        channel, ts = event.get("channel"), event.get("ts")
        if not isinstance(channel, str) or not isinstance(ts, str):
            self._ignore("unreadable")
            return None
        me = self._me
        user, bot_id, subtype = event.get("user"), event.get("bot_id"), event.get("subtype")
        if user == me.user_id or (bot_id is not None and bot_id == me.bot_id):
            # our own messages, thread_broadcast copies included: never a loop
            self._ignore("own_message")
            return None
        is_bot = bot_id is not None or subtype == "bot_message"
        if is_bot and not self._settings.allow_bots:
            self._ignore("bot_message")
            return None
        if subtype not in _PERSON_SUBTYPES and not (subtype == "bot_message" and is_bot):
            self._ignore("subtype")
            return None
        sender_id = user if isinstance(user, str) else bot_id
        if not isinstance(sender_id, str):
            self._ignore("no_sender")
            return None
        channel_type = str(event.get("channel_type") or _channel_type(channel))
        is_dm = channel_type == "im"
        if not self._allowed(sender_id, channel, is_dm):
            log.debug("slack: ignoring %s in %s (not allowed)", sender_id, channel)
            self._ignore("not_allowed")
            return None
        raw_text = str(event.get("text") or "")
        mention = event.get("type") == "app_mention" or f"<@{me.user_id}" in raw_text
        thread_ts = event.get("thread_ts") if isinstance(event.get("thread_ts"), str) else None
        if is_dm:
            thread_id = thread_ts
        elif mention:
            thread_id = thread_ts or ts  # a mention at the top starts a thread there
        elif thread_ts is not None and await self._follows(event, channel, thread_ts):
            thread_id = thread_ts
        else:
            self._ignore("not_addressed")
            return None
        if is_bot:
            profile = event.get("bot_profile") or {}
            name = event.get("username") or profile.get("name")
        else:
            name, is_bot = await self._api.user_info(sender_id)
        metadata: dict[str, Any] = {
            "ts": ts,
            "is_mention": mention,
            "channel_type": channel_type,
        }
        if thread_ts is not None:
            metadata["thread_ts"] = thread_ts
        for key, value in (
            ("event_id", body.get("event_id")),
            ("team_id", body.get("team_id")),
            ("subtype", subtype),
        ):
            if value is not None:
                metadata[key] = value
        return Message(
            conversation=ConversationRef(self._name, channel, thread_id),
            sender=Sender(sender_id, name, is_bot),
            text=inbound_text(raw_text, bot_user_id=me.user_id, user_name=self._api.cached_name),
            external_id=external_id(channel, ts),
            attachments=_attachments(event.get("files")),
            raw=_without_token(body),
            metadata=metadata,
        )

    async def _follows(self, event: Mapping[str, Any], channel: str, thread_ts: str) -> bool:
        """Whether a message in a channel thread, without a mention, is addressed to us."""
        if event.get("parent_user_id") == self._me.user_id:
            return True  # a reply under the bot's own message
        if self._settings.reply_in_threads != "all":
            return False
        known = await self._threads.knows(channel, thread_ts)
        if known is not None:
            return known
        if await self._api.bot_in_thread(channel, thread_ts, self._me):
            await self._threads.add(channel, thread_ts)
            return True
        self._threads.add_negative(channel, thread_ts)
        return False

    async def from_history(
        self, channel: str, thread_ts: str | None, item: Mapping[str, Any]
    ) -> Message | None:
        """A message read back from the channel's history; ``None`` for joins, edits
        and other events that are not something someone said."""
        ts, subtype = item.get("ts"), item.get("subtype")
        if not isinstance(ts, str) or subtype not in _PERSON_SUBTYPES | {"bot_message"}:
            return None
        user, bot_id = item.get("user"), item.get("bot_id")
        sender_id = user if isinstance(user, str) else bot_id
        if not isinstance(sender_id, str):
            return None
        is_bot = bot_id is not None or subtype == "bot_message"
        if user == self._me.user_id or (bot_id is not None and bot_id == self._me.bot_id):
            name: str | None = "assistant"
        elif is_bot:
            profile = item.get("bot_profile") or {}
            name = item.get("username") or profile.get("name")
        else:
            name, is_bot = await self._api.user_info(sender_id)
        text = inbound_text(
            str(item.get("text") or ""),
            bot_user_id=self._me.user_id,
            user_name=self._api.cached_name,
        )
        return Message(
            conversation=ConversationRef(self._name, channel, thread_ts),
            sender=Sender(sender_id, name, is_bot),
            text=text,
            external_id=external_id(channel, ts),
            attachments=_attachments(item.get("files")),
            metadata={"ts": ts, "history": True},
            received_at=datetime.fromtimestamp(float(ts), UTC),
        )

    async def from_command(self, body: Mapping[str, Any]) -> Message | None:
        """The message a slash command becomes (``/botkit summary x`` → ``/summary x``)."""
        user, channel = body.get("user_id"), body.get("channel_id")
        trigger = body.get("trigger_id")
        if not isinstance(user, str) or not isinstance(channel, str) or not trigger:
            return None
        channel_name = body.get("channel_name")
        channel_type = "im" if channel_name == "directmessage" else _channel_type(channel)
        if not self._allowed(user, channel, channel_type == "im"):
            return None
        text = inbound_text(
            str(body.get("text") or ""),
            bot_user_id=self._me.user_id,
            user_name=self._api.cached_name,
        )
        routed = text if text.startswith("/") else f"/{text}" if text else "/help"
        name, is_bot = await self._api.user_info(user)
        metadata: dict[str, Any] = {"command": body.get("command"), "channel_type": channel_type}
        if body.get("response_url"):
            metadata["response_url"] = body["response_url"]
        return Message(
            conversation=ConversationRef(self._name, channel, None),
            sender=Sender(user, name or body.get("user_name"), is_bot),
            text=routed,
            external_id=f"command:{trigger}",
            raw=_without_token(body),
            metadata=metadata,
        )


def _attachments(files: object) -> tuple[Attachment, ...]:
    if not isinstance(files, list):
        return ()
    out = []
    for f in files:
        if isinstance(f, Mapping) and f.get("name"):
            out.append(
                Attachment(
                    name=str(f["name"]),
                    content_type=str(f.get("mimetype") or "application/octet-stream"),
                    size=f.get("size") if isinstance(f.get("size"), int) else None,
                    # the download URL gives the file's bytes; url_private may show a
                    # page for some kinds of file
                    url=f.get("url_private_download") or f.get("url_private"),
                )
            )
    return tuple(out)
