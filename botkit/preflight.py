"""What ``botkit run`` would fail on outside the config file: the database and the port.

``botkit check-config`` reports these with the file's own faults, and ``botkit run``
checks them before it creates or migrates anything, so a wrong URL, a database without
botkit's schema or a port another program holds is one line at start, not a traceback
half-way through it. Nothing here changes anything: an SQLite file that does not exist
yet is left for ``run`` to create, and a schema behind is left for ``run`` (SQLite, or
``database.auto_migrate``) or ``botkit db upgrade`` to migrate.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from botkit.config import DatabaseSection
from botkit.exceptions import ConfigError
from botkit.store import Database, is_sqlite

__all__ = ["DatabaseReport", "auto_migrates", "check_database", "check_port", "safe_url"]

# how long an unreachable database may take to say so
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class DatabaseReport:
    """What ``run`` will find in the database, for ``check-config`` to show.

    Attributes:
        url: the URL, its password hidden.
        state: one phrase: ``"schema 0004, current"``, ``"does not exist yet: botkit run
            creates it"``...
    """

    url: str
    state: str


def safe_url(url: str) -> str:
    """``url`` with its password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def auto_migrates(section: DatabaseSection) -> bool:
    """Whether ``run`` migrates this database itself (SQLite unless told not to;
    PostgreSQL only with ``database.auto_migrate = true``)."""
    auto = section.auto_migrate
    return auto if auto is not None else is_sqlite(section.url)


async def check_database(section: DatabaseSection) -> DatabaseReport:
    """Open the database and read its schema's revision; create and change nothing.

    Raises:
        ConfigError: (``database.url``) the database cannot be opened or does not
            answer, or its schema is not current and ``run`` would not migrate it
            (then the line says to run ``botkit db upgrade``).
    """
    url = safe_url(section.url)
    path = _sqlite_file(section.url)
    if path is not None and not path.exists():
        return DatabaseReport(url, "does not exist yet: botkit run creates it")
    database = Database(section.url, busy_timeout=section.busy_timeout)
    try:
        current, head = await asyncio.wait_for(database.revisions(), CONNECT_TIMEOUT)
    except TimeoutError:
        raise ConfigError(
            "database.url", f"{url} did not answer within {CONNECT_TIMEOUT:g} seconds"
        ) from None
    except Exception as exc:
        raise ConfigError("database.url", f"cannot open {url}: {_reason(exc)}") from None
    finally:
        await database.close()
    if current == head:
        return DatabaseReport(url, f"schema {head}, current")
    if auto_migrates(section):
        was = f"at {current}" if current else "empty"
        return DatabaseReport(url, f"{was}: botkit run migrates it to {head}")
    if current is None:
        raise ConfigError("database.url", f"{url} has no botkit schema: run `botkit db upgrade`")
    raise ConfigError(
        "database.url",
        f"{url}'s schema is at {current}, this botkit needs {head}: run `botkit db upgrade`",
    )


def check_port(host: str, port: int) -> ConfigError | None:
    """A ``web.port`` fault when ``host:port`` cannot be listened on (another program
    holds it), else ``None``. Port 0 (any free port) always can."""
    if port == 0:
        return None
    try:
        addresses = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        return ConfigError("web.host", f"cannot listen on {host!r}: {exc}")
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # as the web server binds: a port only lingering after a close is free
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                return ConfigError(
                    "web.port", f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                )
    return None


def _sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL; ``None`` for PostgreSQL and in-memory databases."""
    if not is_sqlite(url):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def _reason(exc: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's wrapping."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(cause).strip().splitlines()
    return text[0] if text else type(cause).__name__
