"""How botkit's process logs: text for a person at a terminal, JSON lines for machines.

Every record carries the conversation and message being worked on, from context
variables the dispatcher and the outbox set around their work (:func:`log_context`);
a :class:`ContextFilter` on the handler copies them onto the record. Message bodies
reach a log only as a record's ``body`` extra, which the filter drops unless bodies
were asked for (``[logging] bodies = true``): the text of what people write is theirs.
Secrets are :class:`~botkit.secrets.Secret` objects, which print ``***`` in either
format.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal, TextIO

__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "LogFormat",
    "configure_logging",
    "configured_logging",
    "log_context",
]

LogFormat = Literal["auto", "json", "text"]

# the work under way in this task (set by the dispatcher and the outbox)
_CONVERSATION: ContextVar[int | None] = ContextVar("botkit_log_conversation", default=None)
_MESSAGE: ContextVar[int | None] = ContextVar("botkit_log_message", default=None)

# attributes every LogRecord has: anything else on a record is an ``extra`` field
_STANDARD = frozenset(
    {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime"}
)
# the handler botkit installed, so that configuring again replaces it
_HANDLER_NAME = "botkit"


@contextlib.contextmanager
def log_context(
    *, conversation_id: int | None = None, message_id: int | None = None
) -> Iterator[None]:
    """Within this block, log records carry these ids (the ones given; others stay)."""
    tokens = []
    if conversation_id is not None:
        tokens.append((_CONVERSATION, _CONVERSATION.set(conversation_id)))
    if message_id is not None:
        tokens.append((_MESSAGE, _MESSAGE.set(message_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Adds ``conversation_id`` and ``message_id`` to every record, and drops a record's
    ``body`` unless ``bodies`` is true.

    Args:
        bodies: keep message bodies a record carries (``extra={"body": text}``).
    """

    def __init__(self, *, bodies: bool = False) -> None:
        super().__init__()
        self.bodies = bodies

    def filter(self, record: logging.LogRecord) -> bool:
        fields = vars(record)
        if fields.get("conversation_id") is None:
            fields["conversation_id"] = _CONVERSATION.get()
        if fields.get("message_id") is None:
            fields["message_id"] = _MESSAGE.get()
        if not self.bodies:
            fields.pop("body", None)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the ids, any extras.

    Values that are not JSON (a ``Secret``, a path) are written as ``str()``, so a
    secret shows as ``***`` here as it does in text.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    """The classic line, with the ids and a kept body appended when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [
            f"{name}={value}"
            for name in ("conversation_id", "message_id")
            if (value := getattr(record, name, None)) is not None
        ]
        if ids:
            text += f" [{' '.join(ids)}]"
        if "body" in vars(record):
            text += f" body={vars(record)['body']!r}"
        return text


def configure_logging(
    *,
    level: int = logging.INFO,
    log_format: LogFormat = "auto",
    bodies: bool = False,
    verbose: bool = False,
    terse: bool = False,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send the process's logs to ``stream`` (stderr), replacing what this installed before.

    Args:
        level: the least severe records shown; ``DEBUG`` is botkit's own detail only
            (as ``verbose``), other libraries show INFO and above.
        log_format: ``"json"``, ``"text"``, or ``"auto"``: JSON lines unless the stream
            is a terminal.
        bodies: let message bodies through (see the module's docstring).
        verbose: botkit's own loggers at DEBUG, and Alembic's migration lines shown.
        terse: text lines without the time and the logger (a terminal session,
            ``botkit chat``).
        stream: where to write; stderr by default.

    Returns:
        The handler installed.
    """
    out = stream if stream is not None else sys.stderr
    as_json = log_format == "json" or (log_format == "auto" and not _is_terminal(out))
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    if as_json:
        handler.setFormatter(JsonFormatter())
    elif terse:
        handler.setFormatter(_TextFormatter("botkit: %(message)s"))
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ContextFilter(bodies=bodies))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    # DEBUG is botkit's own detail only: third-party DEBUG logs are a flood, and some
    # (HTTP clients) write whole request bodies, what people wrote included
    root.setLevel(max(level, logging.INFO))
    detail = verbose or level <= logging.DEBUG
    logging.getLogger("botkit").setLevel(logging.DEBUG if detail else logging.NOTSET)
    # Alembic says "Context impl SQLiteImpl." and each step at INFO on every start
    logging.getLogger("alembic").setLevel(logging.INFO if verbose else logging.WARNING)
    return handler


@contextlib.contextmanager
def configured_logging(
    *,
    level: int = logging.INFO,
    log_format: LogFormat = "auto",
    bodies: bool = False,
    verbose: bool = False,
    terse: bool = False,
    stream: TextIO | None = None,
) -> Iterator[logging.Handler]:
    """:func:`configure_logging` for the block, then the loggers as they were (a
    command run in-process, as tests do, leaves no handler behind)."""
    loggers = [logging.getLogger(name) for name in ("", "botkit", "alembic")]
    levels = [logger.level for logger in loggers]
    handler = configure_logging(
        level=level,
        log_format=log_format,
        bodies=bodies,
        verbose=verbose,
        terse=terse,
        stream=stream,
    )
    try:
        yield handler
    finally:
        handler.flush()
        logging.getLogger().removeHandler(handler)
        for logger, old in zip(loggers, levels, strict=True):
            logger.setLevel(old)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False
