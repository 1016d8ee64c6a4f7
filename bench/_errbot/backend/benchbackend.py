"""An errbot backend for the peers benchmark; runs in errbot's own venv, never imported
by botkit.

Like errbot's Text and Test backends, but for many users at once: ``serve_forever``
takes ``(user, text)`` pairs from :attr:`BenchBackend.incoming` and hands each to
``callback_message`` as a direct message from that user; every reply is passed to
:attr:`BenchBackend.on_reply` with the user it is addressed to. ``None`` on the queue
stops it.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

from errbot.backends.base import (  # type: ignore[import-not-found]
    ONLINE,
    Message,
    Person,
)
from errbot.core import ErrBot  # type: ignore[import-not-found]


class BenchPerson(Person):  # type: ignore[misc]
    """A user known by a name alone."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def person(self) -> str:
        return self._name

    @property
    def client(self) -> str:
        return ""

    @property
    def nick(self) -> str:
        return self._name

    @property
    def fullname(self) -> str:
        return self._name

    @property
    def email(self) -> str:
        return ""

    @property
    def aclattr(self) -> str:
        return self._name

    def __str__(self) -> str:
        return self._name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BenchPerson) and other._name == self._name

    def __hash__(self) -> int:
        return hash(self._name)


class BenchBackend(ErrBot):  # type: ignore[misc]
    """Messages in from a queue, replies out to a callback."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.bot_identifier = BenchPerson("errbot")
        self.incoming: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self.on_reply: Callable[[str, str], None] = lambda user, text: None

    def serve_forever(self) -> None:
        self.connect_callback()  # activates the plugins
        try:
            while (item := self.incoming.get()) is not None:
                user, text = item
                msg = Message(text)
                msg.frm = BenchPerson(user)
                msg.to = self.bot_identifier
                self.callback_message(msg)
        finally:
            self.disconnect_callback()
            self.shutdown()

    def send_message(self, msg: Any) -> None:
        super().send_message(msg)  # the plugins' callback_botmessage
        self.on_reply(str(msg.to), msg.body)

    def build_reply(
        self, msg: Any, text: str | None = None, private: bool = False, threaded: bool = False
    ) -> Any:
        response = self.build_message(text)
        response.frm = self.bot_identifier
        response.to = msg.frm
        return response

    def build_identifier(self, text_representation: str) -> BenchPerson:
        return BenchPerson(text_representation.lstrip("@"))

    def change_presence(self, status: str = ONLINE, message: str = "") -> None:
        pass

    def connect(self) -> None:
        pass

    def query_room(self, room: str) -> Any:
        raise NotImplementedError("the bench backend has no rooms")

    def rooms(self) -> list[Any]:
        return []

    def prefix_groupchat_reply(self, message: Any, identifier: Any) -> None:
        pass

    @property
    def mode(self) -> str:
        return "bench"
