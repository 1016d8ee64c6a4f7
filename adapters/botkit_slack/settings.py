"""``SlackSettings``: the ``[adapters.slack]`` table, parsed once at start."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from botkit import ConfigError, Secret

__all__ = ["SlackSettings"]


@dataclass(frozen=True, slots=True)
class SlackSettings:
    """How the Slack adapter connects and which messages it answers.

    Attributes:
        bot_token: the bot token (``xoxb-``), from ``SLACK_BOT_TOKEN`` unless
            ``bot_token_env`` names another variable.
        app_token: the app-level token (``xapp-``, scope ``connections:write``) Socket Mode
            connects with, from ``SLACK_APP_TOKEN``; required when ``transport = "socket"``.
        signing_secret: the app's signing secret, from ``SLACK_SIGNING_SECRET``; required
            when ``transport = "http"``.
        transport: ``"socket"`` (Socket Mode, no public URL needed) or ``"http"`` (the Events
            API posts to ``events_path`` on botkit's web server).
        api_url: the Web API's base URL; tests point it at a local fake.
        events_path: where Slack posts events and slash commands in HTTP mode.
        slash_command: the slash command that routes to botkit commands
            (``/botkit summary`` reaches plugins as ``/summary``).
        allowed_channels: channel ids (``C…``, ``G…``) the bot answers in; empty means all.
            Direct messages are governed by ``allowed_users`` only.
        allowed_users: user ids (``U…``, ``W…``) the bot answers; empty means everyone.
        allow_bots: answer other bots' messages (never its own).
        reply_in_threads: in a channel thread the bot is part of, ``"mentions"`` answers
            only messages that mention it (or reply under the bot's own message);
            ``"all"`` answers every message in the thread. Which threads the bot is in
            is remembered for 90 days after it last joined one (and by each process for
            the 10,000 it saw last); a thread forgotten is looked up once again.
        typing_reaction: the emoji name put on a message while its answer is being
            written (Slack has no typing indicator for bots); ``""`` turns it off.
        post_interval: the least seconds between two messages posted to one channel
            (Slack allows about one per second per channel).
        max_rate_limit_wait: a 429 asking to wait at most this long is waited out here;
            a longer one is raised as ``RateLimitError`` so the core reschedules.
        timeout: seconds before one Web API call is abandoned.
    """

    bot_token: Secret = field(metadata={"env": "SLACK_BOT_TOKEN"})
    app_token: Secret | None = field(default=None, metadata={"env": "SLACK_APP_TOKEN"})
    signing_secret: Secret | None = field(default=None, metadata={"env": "SLACK_SIGNING_SECRET"})
    transport: Literal["socket", "http"] = "socket"
    api_url: str = "https://slack.com/api/"
    events_path: str = "/slack/events"
    slash_command: str = "/botkit"
    allowed_channels: tuple[str, ...] = ()
    allowed_users: tuple[str, ...] = ()
    allow_bots: bool = False
    reply_in_threads: Literal["mentions", "all"] = "mentions"
    typing_reaction: str = "eyes"
    post_interval: float = 1.0
    max_rate_limit_wait: float = 30.0
    timeout: float = 30.0

    def problems(self, prefix: str) -> Iterator[ConfigError]:
        """Combinations the TOML types alone cannot catch, found when the table is parsed.

        Args:
            prefix: the table's dotted name, e.g. ``"adapters.slack"``.

        Yields:
            ConfigError: naming the key at fault, one for each problem.
        """
        if self.transport == "socket" and self.app_token is None:
            yield ConfigError(
                f"{prefix}.app_token",
                "Socket Mode needs an app-level token (xapp-…): set SLACK_APP_TOKEN, or name "
                'another variable with app_token_env, or use transport = "http"',
            )
        if self.transport == "http" and self.signing_secret is None:
            yield ConfigError(
                f"{prefix}.signing_secret",
                "the HTTP Events API needs the signing secret: set SLACK_SIGNING_SECRET, or "
                "name another variable with signing_secret_env",
            )
        if not self.events_path.startswith("/"):
            yield ConfigError(f"{prefix}.events_path", "must start with '/'")
        if not self.slash_command.startswith("/") or len(self.slash_command) < 2:
            yield ConfigError(f"{prefix}.slash_command", "must look like '/botkit'")
        if not self.api_url.startswith(("http://", "https://")):
            yield ConfigError(f"{prefix}.api_url", "must be an http(s) URL")
        for key, value in (
            ("post_interval", self.post_interval),
            ("max_rate_limit_wait", self.max_rate_limit_wait),
        ):
            if value < 0:
                yield ConfigError(f"{prefix}.{key}", "must not be negative")
        if self.timeout <= 0:
            yield ConfigError(f"{prefix}.timeout", "must be positive")

    def check(self, prefix: str) -> None:
        """Raise every problem :meth:`problems` finds, together.

        Raises:
            ConfigError: naming the key at fault (``ConfigErrors``: several).
        """
        ConfigError.raise_any(self.problems(prefix))
