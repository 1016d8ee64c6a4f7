"""The network guard: every attempt to leave this machine is blocked, recorded, and fails
the test that made it.

Raising inside the code under test is not enough: botkit catches errors where a user
would want it to (the dispatcher apologises, the outbox retries), so a test whose code
tried to reach the internet could still pass. Here the attempt is blocked with an
``OSError`` (what a firewall gives) *and* written down; the fixture fails the test at
teardown with the list, whatever the code did with the error.

What counts as leaving: a TCP ``connect``/``connect_ex`` or a UDP ``connect``,
``sendto`` or ``sendmsg`` to an address that is not loopback (``0.0.0.0`` and ``::``
mean this machine on Linux), and a name lookup (``getaddrinfo``, ``gethostbyname``,
``gethostbyname_ex``) of a name that is not ``localhost``, ``*.localhost``, this machine's
own name, or an IP literal. Unix sockets are never touched. What C code does with sockets
of its own (c-ares through aiodns, a database driver's C client) is beyond a guard in
Python; none of botkit's test dependencies does it (asyncpg and aiohttp use Python's).

Subprocesses are covered too: at start the plugin puts ``tests/netguard`` first on
``PYTHONPATH`` and names a log file in ``$TESTS_NETWORK_GUARD_LOG``; that folder's
``sitecustomize.py`` installs the same guard in every Python process started with that
environment, writing attempts to the log, which the fixture reads at teardown (each test
gets a log of its own; what a process started outside any test attempts fails the run at
the end). A test that builds a subprocess's environment from scratch must keep both
variables (``guarded_environ``).

This module is the guard itself and imports nothing but the standard library, so that
``sitecustomize`` can load it first thing in any Python; ``botkit_netguard`` next to it
is the pytest plugin (``tests/conftest.py`` and the example package's conftest load it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sysconfig
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "LOG_VARIABLE",
    "NetworkBlockedError",
    "NetworkGuard",
    "guarded_environ",
    "install_from_environment",
]

LOG_VARIABLE = "TESTS_NETWORK_GUARD_LOG"
SITE_DIR = Path(__file__).resolve().parent
_THIS_FILE = str(Path(__file__).resolve())
_STDLIB = sysconfig.get_paths()["stdlib"]
_INET = (socket.AF_INET, socket.AF_INET6)
_INHERITED = object()


class NetworkBlockedError(PermissionError):
    """An attempt to leave the machine, refused by the test network guard."""


def _local_names() -> set[str]:
    names = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
    with contextlib.suppress(OSError):
        names.add(socket.gethostname().lower())
    return names


def _text(host: object) -> str | None:
    if host is None:
        return None
    if isinstance(host, bytes | bytearray):
        return bytes(host).decode(errors="replace")
    return str(host)


def local_address(host: object) -> bool:
    """Whether connecting to ``host`` (an IP literal or a name) stays on this machine."""
    text = _text(host)
    if text is None or text == "":
        return True
    text = text.split("%", 1)[0]  # an IPv6 zone
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return local_name(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def local_name(host: object) -> bool:
    """Whether looking ``host`` up needs nothing beyond this machine."""
    text = _text(host)
    if text is None or text == "":
        return True
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        lowered = text.lower().rstrip(".")
        return lowered in _local_names() or lowered.endswith(".localhost")
    return True  # a literal: nothing is looked up


def _where() -> str:
    """The innermost caller outside this module and the standard library."""
    frames = [f for f in traceback.extract_stack() if f.filename != _THIS_FILE]
    outside = [f for f in frames if not f.filename.startswith(_STDLIB)]
    chosen = outside or frames
    if not chosen:
        return ""
    return f" (from {chosen[-1].filename}:{chosen[-1].lineno})"


class NetworkGuard:
    """Patches ``socket`` so that leaving the machine is refused and reported to ``sink``.

    Installs stack: ``uninstall`` puts back exactly what ``install`` replaced.
    """

    def __init__(self, sink: Callable[[str], None]) -> None:
        self.sink = sink
        self._saved: list[tuple[Any, str, Any]] = []

    def block(self, what: str) -> NetworkBlockedError:
        """Record ``what`` and return the error to raise."""
        entry = f"{what}{_where()}"
        with contextlib.suppress(Exception):  # recording must never be what breaks
            self.sink(entry)
        return NetworkBlockedError(f"blocked by the test network guard: {what}")

    def install(self) -> None:
        """Patch ``socket.socket``'s connecting and sending methods and the lookups."""
        if self._saved:
            return
        guard = self
        cls = socket.socket
        real_connect, real_connect_ex = cls.connect, cls.connect_ex
        real_sendto, real_sendmsg = cls.sendto, cls.sendmsg

        def leaves(sock: socket.socket, address: Any) -> bool:
            if sock.family not in _INET or not isinstance(address, tuple) or not address:
                return False
            return not local_address(address[0])

        def kind(sock: socket.socket) -> str:
            return "UDP" if sock.type == socket.SOCK_DGRAM else "TCP"

        def connect(self: socket.socket, address: Any) -> None:
            if leaves(self, address):
                raise guard.block(f"{kind(self)} connect to {address!r}")
            real_connect(self, address)

        def connect_ex(self: socket.socket, address: Any) -> int:
            if leaves(self, address):
                raise guard.block(f"{kind(self)} connect_ex to {address!r}")
            return real_connect_ex(self, address)

        def sendto(self: socket.socket, data: Any, *args: Any) -> int:
            if args and leaves(self, args[-1]):
                raise guard.block(f"{kind(self)} sendto {args[-1]!r}")
            return real_sendto(self, data, *args)

        def sendmsg(self: socket.socket, buffers: Any, *args: Any) -> int:
            if len(args) >= 3 and args[2] is not None and leaves(self, args[2]):
                raise guard.block(f"{kind(self)} sendmsg to {args[2]!r}")
            return real_sendmsg(self, buffers, *args)

        def lookup(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
            def looked_up(host: Any, *args: Any, **kwargs: Any) -> Any:
                if not local_name(host):
                    raise socket.gaierror(
                        socket.EAI_NONAME,
                        str(guard.block(f"name lookup {name}({_text(host)!r})")),
                    )
                return real(host, *args, **kwargs)

            looked_up.__name__ = name
            return looked_up

        patches: list[tuple[Any, str, Any]] = [
            (cls, "connect", connect),
            (cls, "connect_ex", connect_ex),
            (cls, "sendto", sendto),
            (cls, "sendmsg", sendmsg),
        ]
        for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
            patches.append((socket, name, lookup(name, getattr(socket, name))))
        for owner, name, replacement in patches:
            # socket.socket inherits these from _socket.socket: nothing of its own to keep
            self._saved.append((owner, name, owner.__dict__.get(name, _INHERITED)))
            setattr(owner, name, replacement)

    def uninstall(self) -> None:
        """Put back what ``install`` replaced."""
        for owner, name, original in reversed(self._saved):
            if original is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self._saved.clear()


def _append_to(log: str) -> Callable[[str], None]:
    def sink(entry: str) -> None:
        line = f"pid {os.getpid()}: {entry}".replace("\n", " ") + "\n"
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode(errors="replace"))
        finally:
            os.close(fd)

    return sink


def install_from_environment(environ: Mapping[str, str] = os.environ) -> NetworkGuard | None:
    """In a subprocess: guard it, writing to the log ``$TESTS_NETWORK_GUARD_LOG`` names."""
    log = environ.get(LOG_VARIABLE)
    if not log:
        return None
    guard = NetworkGuard(_append_to(log))
    guard.install()
    return guard


def guarded_environ(environ: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``environ`` (default: this process's) plus ``extra``, guarded: the guard's folder
    first on its ``PYTHONPATH`` (the rest of which is ``environ``'s or ``extra``'s) and
    this process's guard log, unless ``environ`` names one."""
    env = dict(os.environ if environ is None else environ)
    if LOG_VARIABLE in os.environ and LOG_VARIABLE not in env:
        env[LOG_VARIABLE] = os.environ[LOG_VARIABLE]
    env.update(extra)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = [str(SITE_DIR), *[p for p in paths if p != str(SITE_DIR)]]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env
