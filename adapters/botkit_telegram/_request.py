"""python-telegram-bot's HTTP seam, on aiohttp, keeping the bot token out of sight.

The Bot API puts the token in the URL (``/bot<token>/sendMessage``), and URLs end up in
logs: httpx logs every request at INFO, PTB logs its base URL at DEBUG and repeats the
token in ``InvalidToken`` messages. So ``telegram.Bot`` is built with a placeholder token
and token-free URLs, and only :class:`TokenRequest` inserts the real token, at the last
moment, into the URL it hands to aiohttp. Nothing else ever holds it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import aiohttp
import telegram
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

from botkit import Secret, claim_lost_cause, claims_trace

__all__ = ["PLACEHOLDER_TOKEN", "RawBot", "TokenRequest", "redact"]

#: What ``telegram.Bot`` is told the token is; it never sees the real one.
PLACEHOLDER_TOKEN = "botkit-hidden-token"


def redact(text: str, token: Secret) -> str:
    """``text`` with every occurrence of the token replaced by ``***``."""
    secret = token.reveal()
    return text.replace(secret, "***") if secret else text


class TokenRequest(BaseRequest):
    """A ``BaseRequest`` over one aiohttp session that inserts the token into the URL.

    Args:
        api_url: the Bot API server's root (``https://api.telegram.org``).
        token: the bot token.
        timeout: the default seconds to wait for an answer.
    """

    __slots__ = ("_prefixes", "_session", "_timeout", "_token")

    def __init__(self, api_url: str, token: Secret, *, timeout: float) -> None:
        root = api_url.rstrip("/")
        secret = token.reveal()
        self._prefixes = (
            (f"{root}/bot/", f"{root}/bot{secret}/"),
            (f"{root}/file/bot/", f"{root}/file/bot{secret}/"),
        )
        self._token = token
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout; PTB adds the long-poll timeout to it for getUpdates."""
        return self._timeout

    async def initialize(self) -> None:
        """Open the aiohttp session (again, after a shutdown)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "botkit (python-telegram-bot)"},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout),
                # a send or edit is refused as its first byte is about to be written
                # if its claims lapsed meanwhile (a process frozen in the pool's wait)
                trace_configs=[claims_trace()],
            )

    async def shutdown(self) -> None:
        """Close the session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: float | Any | None = BaseRequest.DEFAULT_NONE,
        write_timeout: float | Any | None = BaseRequest.DEFAULT_NONE,
        connect_timeout: float | Any | None = BaseRequest.DEFAULT_NONE,
        pool_timeout: float | Any | None = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one request; network failures become PTB's ``NetworkError``/``TimedOut``."""
        if self._session is None or self._session.closed:
            raise RuntimeError("the Telegram request session is not initialized")
        read = self._timeout if read_timeout is BaseRequest.DEFAULT_NONE else read_timeout
        connect = self._timeout if connect_timeout is BaseRequest.DEFAULT_NONE else connect_timeout
        # one overall deadline: a long poll's read timeout plus the time to connect
        total = None if read is None else read + (connect or 0.0)
        data: Any = request_data.json_parameters if request_data is not None else None
        if request_data is not None and request_data.contains_files:
            # an upload (a voice note): multipart/form-data, the values JSON-encoded as
            # in PTB's own HTTPXRequest, each file a part with its name and type
            form = aiohttp.FormData(quote_fields=False)
            for name, value in request_data.json_parameters.items():
                form.add_field(name, value)
            for name, (filename, content, mimetype) in request_data.multipart_data.items():
                body = content if isinstance(content, bytes) else content.read()
                form.add_field(name, body, filename=filename, content_type=mimetype)
            data = form
        # else a form of JSON-encoded values, exactly what PTB's own HTTPXRequest sends
        try:
            async with self._session.request(
                method,
                self._with_token(url),
                data=data,
                timeout=aiohttp.ClientTimeout(total=total, sock_connect=connect),
            ) as response:
                return response.status, await response.read()
        except TimeoutError:
            raise TimedOut("the Bot API did not answer in time") from None
        except aiohttp.ClientError as exc:
            lost = claim_lost_cause(exc)
            if lost is not None:  # PTB wraps it in a NetworkError on its way out
                raise lost from None
            # aiohttp's messages may quote the URL, which holds the token
            detail = redact(str(exc), self._token)
            leaked = detail != str(exc) or self._token.reveal() in repr(exc)
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {detail}") from (
                None if leaked else exc
            )

    def _with_token(self, url: str) -> str:
        for bare, with_token in self._prefixes:
            if url.startswith(bare):
                return with_token + url[len(bare) :]
        raise ValueError("a Bot API URL outside the configured api_url")


class RawBot(telegram.Bot):
    """``telegram.Bot`` plus getUpdates returning the updates as plain JSON.

    ``Bot.get_updates`` parses the whole batch into ``Update`` objects and fails the batch
    when one update does not parse (an older or newer payload shape), which would block
    the offset forever. The adapter fetches the batch as plain dicts and reads them one at
    a time (``_updates.read_update``: PTB's ``Update`` where it parses, the dict where not).

    Args:
        api_url: the Bot API server's root.
        token: the bot token (only the requests ever hold it).
        timeout: the default seconds to wait for an answer.
    """

    def __init__(self, api_url: str, token: Secret, *, timeout: float) -> None:
        root = api_url.rstrip("/")
        # getUpdates has a connection of its own, as in PTB, so a long poll never
        # holds up a send
        self._updates_request = TokenRequest(root, token, timeout=timeout)
        super().__init__(
            PLACEHOLDER_TOKEN,
            base_url=lambda _token: f"{root}/bot",
            base_file_url=lambda _token: f"{root}/file/bot",
            request=TokenRequest(root, token, timeout=timeout),
            get_updates_request=self._updates_request,
        )

    async def get_raw_updates(
        self,
        *,
        offset: int | None,
        poll_timeout: int,
        allowed_updates: list[str],
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Long-poll ``getUpdates`` and return its ``result`` list untouched.

        Goes through PTB's public request interface (``BaseRequest.post``, which maps
        Telegram's errors to ``TelegramError``s) with the parameters in the query string,
        one of the four ways the Bot API takes them. ``Bot.do_api_request`` would warn
        that ``get_updates`` exists, and ``Bot._post`` is private.
        """
        params: dict[str, Any] = {
            "timeout": poll_timeout,
            "limit": limit,
            "allowed_updates": json.dumps(allowed_updates),
        }
        if offset is not None:
            params["offset"] = offset
        base = self._updates_request.read_timeout or 0.0
        result: object = await self._updates_request.post(
            f"{self.base_url}/getUpdates?{urlencode(params)}",
            read_timeout=base + poll_timeout,
        )
        if not isinstance(result, list):
            raise NetworkError("getUpdates answered something other than a list")
        return [item for item in result if isinstance(item, dict)]


def make_bot(api_url: str, token: Secret, *, timeout: float) -> RawBot:
    """A ``RawBot`` whose requests all go through :class:`TokenRequest`."""
    return RawBot(api_url, token, timeout=timeout)
