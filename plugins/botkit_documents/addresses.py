"""Which network addresses a fetched link may reach: public ones, unless configured.

A link a person sends must not make the bot read its own network (a cloud metadata
service at 169.254.169.254, an admin page on 127.0.0.1, a database on 10.0.0.5). Every
address a host name resolves to is checked, and the connection is made to the checked
addresses only (:class:`PublicResolver` is the resolver aiohttp connects with), so a
name that resolves to a public address for the check and to a private one for the
connection (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

__all__ = ["AddressPolicy", "AddressRefused", "PublicResolver"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRefused(Exception):
    """A link leads to an address the policy does not allow; the message says which."""


class AddressPolicy:
    """Public addresses are allowed; others only inside ``allowed`` networks.

    Args:
        allowed: networks (``"10.1.0.0/16"``, ``"127.0.0.1/32"``) that may be reached
            although they are not public.

    Raises:
        ValueError: an entry of ``allowed`` is not a network.
    """

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in allowed
        )

    def check(self, host: str, address: str) -> None:
        """Refuse ``address`` (what ``host`` resolved to) unless it may be reached.

        Raises:
            AddressRefused: a non-public address outside the allowed networks.
        """
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id
        except ValueError:
            raise AddressRefused(f"{host} resolved to {address!r}, not an address") from None
        if any(ip in network for network in self.allowed):
            return
        if not is_public(ip):
            shown = host if host == address else f"{host} ({address})"
            raise AddressRefused(f"{shown}, a private or local address")


def is_public(ip: IPAddress) -> bool:
    """Whether ``ip`` is an ordinary Internet address: not private, loopback,
    link-local, shared (CGNAT), reserved, multicast or unspecified. An IPv4 address
    carried inside IPv6 (``::ffff:127.0.0.1``) is judged as the IPv4 one."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is not None:
            return is_public(inner)
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


class PublicResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses the whole name when any
    of its addresses is not allowed (a name that also points inward is not followed).

    Args:
        policy: what may be reached.
        resolver: the resolver asked first; a test passes one with fixed answers.
    """

    def __init__(self, policy: AddressPolicy, resolver: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The addresses of ``host``, every one checked.

        Raises:
            AddressRefused: one of them is not allowed.
        """
        if self._resolver is None:
            self._resolver = ThreadedResolver()
        found: Sequence[ResolveResult] = await self._resolver.resolve(host, port, family)
        for result in found:
            self._policy.check(host, result["host"])
        return list(found)

    async def close(self) -> None:
        """Close the resolver asked first."""
        if self._resolver is not None:
            await self._resolver.close()
