"""Fetching a link someone sent: bounded in size, time and redirects, public hosts only.

Redirects are followed here, one at a time, so that each new URL is checked like the
first (scheme, host, the addresses it resolves to) before anything is sent to it.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from botkit_documents.addresses import AddressPolicy, AddressRefused, PublicResolver

__all__ = ["FetchError", "FetchLimits", "Fetched", "PageFetcher"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FetchError(Exception):
    """The link could not be read; the message says why, for the person who sent it."""


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """How far the fetcher goes for one link.

    Attributes:
        max_bytes: the largest body read; a larger one is refused.
        timeout: seconds for the whole fetch, redirects included.
        max_redirects: redirects followed before giving up.
        content_types: media types accepted (``text/html``...); others are refused
            before their body is read.
        user_agent: the ``User-Agent`` header sent.
    """

    max_bytes: int = 2_000_000
    timeout: float = 15.0
    max_redirects: int = 5
    content_types: frozenset[str] = frozenset({"text/html", "application/xhtml+xml"})
    user_agent: str = "botkit (link summaries)"


@dataclass(frozen=True, slots=True)
class Fetched:
    """A body that was read.

    Attributes:
        url: where it was read from, after redirects.
        content_type: its media type, lower case, without parameters.
        charset: the charset its ``Content-Type`` named, if any.
        body: the bytes, at most ``max_bytes``.
    """

    url: str
    content_type: str
    charset: str | None
    body: bytes


class PageFetcher:
    """Reads links within :class:`FetchLimits` under an :class:`AddressPolicy`.

    Args:
        limits: the bounds.
        policy: which addresses may be reached.
        resolver: resolves host names before the policy checks them (aiohttp's
            threaded resolver by default; a test passes fixed answers).
    """

    def __init__(
        self,
        limits: FetchLimits,
        policy: AddressPolicy,
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.limits = limits
        self.policy = policy
        self._resolver = resolver

    async def fetch(self, url: str) -> Fetched:
        """Read ``url``.

        Raises:
            FetchError: not an http(s) URL, a refused address, too many redirects, too
                large, too slow, an HTTP error or an unaccepted content type.
        """
        connector = aiohttp.TCPConnector(
            resolver=PublicResolver(self.policy, self._resolver),
            use_dns_cache=False,  # every connection resolves, and checks, afresh
            limit=4,
        )
        headers = {"User-Agent": self.limits.user_agent, "Accept": _accept(self.limits)}
        try:
            async with (
                asyncio.timeout(self.limits.timeout),
                aiohttp.ClientSession(connector=connector, headers=headers) as session,
            ):
                return await self._follow(session, URL(url))
        except TimeoutError:
            raise FetchError(f"the site did not answer within {self.limits.timeout:g} s") from None
        except AddressRefused as exc:
            raise FetchError(f"I don't open links to {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            refused = _refusal(exc)
            if refused is not None:
                raise FetchError(f"I don't open links to {refused}") from None
            raise FetchError(f"I could not connect to {exc.host}") from None
        except aiohttp.ClientError as exc:
            raise FetchError(f"reading the link failed ({type(exc).__name__})") from None

    async def _follow(self, session: aiohttp.ClientSession, url: URL) -> Fetched:
        for _ in range(self.limits.max_redirects + 1):
            self._check_url(url)
            async with session.get(url, allow_redirects=False) as response:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchError(f"the site redirected without a target ({url.host})")
                    url = url.join(URL(location))
                    continue
                if response.status >= 400:
                    raise FetchError(f"the site answered {response.status} {response.reason}")
                media = response.content_type.lower()
                if media not in self.limits.content_types:
                    raise FetchError(f"the link is {media or 'of no stated type'}, not a page")
                declared = response.content_length
                if declared is not None and declared > self.limits.max_bytes:
                    raise FetchError(_too_large(self.limits.max_bytes))
                body = await _read_at_most(response, self.limits.max_bytes)
                return Fetched(str(url), media, response.charset, body)
        raise FetchError(f"the link redirected more than {self.limits.max_redirects} times")

    def _check_url(self, url: URL) -> None:
        if url.scheme not in ("http", "https") or not url.host:
            raise FetchError(f"I only open http and https links, not {str(url)[:100]!r}")
        try:
            ipaddress.ip_address(url.host)
        except ValueError:
            return  # a name: the resolver checks what it resolves to
        self.policy.check(url.host, url.host)  # aiohttp connects to a literal unresolved


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    body = bytearray()
    async for block in response.content.iter_chunked(65536):
        body += block
        if len(body) > limit:
            raise FetchError(_too_large(limit))
    return bytes(body)


def _too_large(limit: int) -> str:
    return f"the page is larger than {limit:,} bytes"


def _accept(limits: FetchLimits) -> str:
    return ", ".join([*sorted(limits.content_types), "*/*;q=0.1"])


def _refusal(exc: BaseException) -> AddressRefused | None:
    """The policy's refusal behind a connection error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AddressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
