"""The event loop botkit's commands run on: uvloop's where it is installed, else asyncio's.

Every message passes several callbacks, futures and socket reads and writes through the
event loop; asyncio's own loop is written in Python, and that bookkeeping is part of
botkit's CPU per message (the peers benchmark's pairs, BENCHMARKS.md, measure the
change). uvloop (libuv, in Cython) does the same work with the same asyncio API. It is
one of botkit's dependencies wherever it builds (CPython on Linux and macOS);
``[bot] event_loop`` chooses: ``"auto"`` (the default: uvloop where installed),
``"uvloop"`` (required) or ``"asyncio"``.

An application that embeds a ``Bot`` runs it on whatever loop it runs; these are for the
``botkit`` commands, and for code that wants to run a bot as they do.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from botkit.exceptions import ConfigError

__all__ = ["EventLoop", "loop_factory", "run"]

T = TypeVar("T")
EventLoop = Literal["auto", "uvloop", "asyncio"]
"""``[bot] event_loop``: which event loop the ``botkit`` commands run on."""
EVENT_LOOPS: tuple[EventLoop, ...] = ("auto", "uvloop", "asyncio")


def loop_factory(choice: EventLoop = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the event loop ``choice`` asks for.

    Raises:
        ConfigError: ``"uvloop"`` was asked for and is not installed, or ``choice`` is
            not one of the three.
    """
    if choice not in EVENT_LOOPS:
        raise ConfigError("bot.event_loop", f"must be one of {', '.join(EVENT_LOOPS)}")
    if choice != "asyncio" and importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return uvloop.new_event_loop
    if choice == "uvloop":
        raise ConfigError(
            "bot.event_loop", "uvloop is not installed here (pip install uvloop, or 'auto')"
        )
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: EventLoop = "auto") -> T:
    """Run ``main`` to its end on a new event loop of the kind ``choice`` asks for (as
    ``asyncio.run`` does on its own loop), and return its result."""
    try:
        factory = loop_factory(choice)
    except ConfigError:
        main.close()  # never awaited: say nothing about it
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
