"""``WebChatSettings``: the ``[adapters.web]`` table."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from botkit import ConfigError, Secret

__all__ = ["MIN_SECRET_CHARS", "WebChatSettings"]

#: The shortest cookie secret accepted from the environment: a short one can be guessed.
MIN_SECRET_CHARS = 32
_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


@dataclass(frozen=True, slots=True)
class WebChatSettings:
    """The web chat page on botkit's web server (``[web]`` sets its host and port).

    Attributes:
        path: where the page is served; its socket is ``path + "/ws"``.
        title: the page's title and heading.
        redirect_root: ``/`` redirects to the page.
        max_message_chars: the longest message a person may send, in characters.
        history_messages: how many of the newest messages the page shows when it loads.
        max_connections_per_visitor: open pages (sockets) one visitor may have at once.
        max_connections: open sockets in all, across visitors.
        allowed_origins: the origins (``"https://chat.example.com"``) a browser may open
            the socket from; empty: only the origin the request names in its ``Host``
            header, which is right unless a proxy rewrites it.
        cookie_days: how long the visitor cookie (and so the conversation) lasts.
        secret: signs the visitor cookie, from ``BOTKIT_WEB_SECRET`` (at least 32
            characters); unset, a random secret is made once and kept in the database,
            so cookies survive restarts.
    """

    path: str = "/chat"
    title: str = "botkit"
    redirect_root: bool = True
    max_message_chars: int = 4000
    history_messages: int = 200
    max_connections_per_visitor: int = 8
    max_connections: int = 1000
    allowed_origins: tuple[str, ...] = ()
    cookie_days: int = 365
    secret: Secret | None = field(default=None, metadata={"env": "BOTKIT_WEB_SECRET"})

    def problems(self, prefix: str) -> Iterator[ConfigError]:
        """What the types alone cannot catch, found when the table is parsed.

        Yields:
            ConfigError: naming the key at fault, one for each problem.
        """
        if not _PATH.match(self.path):
            yield ConfigError(
                f"{prefix}.path",
                f"must be a path like '/chat' (letters, digits, '.', '_', '~', '-'; no "
                f"trailing '/'), not {self.path!r}",
            )
        for key, value in (
            ("max_message_chars", self.max_message_chars),
            ("history_messages", self.history_messages),
            ("max_connections_per_visitor", self.max_connections_per_visitor),
            ("max_connections", self.max_connections),
            ("cookie_days", self.cookie_days),
        ):
            if value < 1:
                yield ConfigError(f"{prefix}.{key}", "must be at least 1")
        for origin in self.allowed_origins:
            if not re.match(r"^https?://[^/\s]+$", origin):
                yield ConfigError(
                    f"{prefix}.allowed_origins",
                    f"{origin!r} is not an origin like 'https://chat.example.com'",
                )
        if self.secret is not None and len(self.secret.reveal()) < MIN_SECRET_CHARS:
            yield ConfigError(
                f"{prefix}.secret",
                f"{self.secret.source or 'the secret'} must be at least "
                f"{MIN_SECRET_CHARS} characters (say: openssl rand -hex 32)",
            )
