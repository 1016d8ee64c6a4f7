"""Skills as tools: commands with typed arguments that the model may call.

A tool is a command whose arguments are declared, as a frozen dataclass or a JSON
schema. People call it as ``/forecast Paris days=3``; when the chat skill answers
(``ctx.llm.respond()``), the model is offered the same command as a function and may
call it. The tool loop runs the handler with the parsed arguments, gives the model the
result and asks again, for at most ``max_tool_rounds`` rounds. Invalid arguments are
not a crash: the error goes back to the model, which can correct itself. A tool with
side effects is not run on the model's word alone: the user is asked first, the call
waits in the plugin's state, and their "yes" runs it.

No tool runs twice for one message: each call is stored with the message it answers
before the model is asked again (a :class:`ToolLedger`), and an answer tried again (the
model was down, or the process stopped mid-answer) replays the stored rounds instead of
running them again. If the answer fails after a tool did something, the user is told
what was done (:func:`unfinished_answer`), not asked to try again::

    @dataclass(frozen=True)
    class ForecastArgs:
        \"\"\"Arguments of /forecast.

        Attributes:
            city: the city, e.g. "Paris".
            days: how many days ahead, 1 to 7.
        \"\"\"

        city: str
        days: int = 1

    @tool(plugin, "forecast", description="The weather forecast for a city")
    async def forecast(args: ForecastArgs, ctx: Context) -> str:
        return f"Sunny in {args.city} for {args.days} day(s)"

The modules, one job each:

- :mod:`~botkit.tools.declaration`: :class:`Tool`, its ``/name`` command
  (:class:`ToolCommand`) and the :func:`tool` decorator;
- :mod:`~botkit.tools.arguments`: JSON schemas of dataclasses, checking and building
  arguments, reading what a person typed (:class:`ToolArgumentsError`);
- :mod:`~botkit.tools.loop`: :func:`run_tool_loop`, which knows no ``Context``: it is
  given a :class:`ToolModel` and a :class:`ToolHost`;
- :mod:`~botkit.tools.ledger`: :class:`ToolLedger`, no side effect twice;
- :mod:`~botkit.tools.confirmation`: the typed confirmation step (:class:`PendingCall`,
  :func:`decide`, the ``confirm_tool_call`` handler).

Declaring a side-effect tool adds one visible message handler to its plugin,
``confirm_tool_call``: it is listed in ``plugin.message_handlers`` and by ``botkit
check-config`` (see :mod:`botkit.tools.confirmation` for why it is added, not asked for).
"""

from botkit.tools._host import ContextHost
from botkit.tools.arguments import ToolArgumentsError, schema_of
from botkit.tools.confirmation import (
    CONFIRM_TIMEOUT,
    CONFIRMATION_HANDLER,
    PendingCall,
    Step,
    ToolConfirmation,
    decide,
)
from botkit.tools.declaration import Tool, ToolCommand, ToolFunction, offered_tools, tool
from botkit.tools.ledger import CONFIRMED, ToolLedger, unfinished_answer
from botkit.tools.loop import (
    DEFAULT_TOOL_ROUNDS,
    ToolHost,
    ToolModel,
    run_tool_loop,
    tool_choice_of,
    tool_choice_problems,
)

__all__ = [
    "CONFIRMATION_HANDLER",
    "CONFIRMED",
    "CONFIRM_TIMEOUT",
    "DEFAULT_TOOL_ROUNDS",
    "ContextHost",
    "PendingCall",
    "Step",
    "Tool",
    "ToolArgumentsError",
    "ToolCommand",
    "ToolConfirmation",
    "ToolFunction",
    "ToolHost",
    "ToolLedger",
    "ToolModel",
    "decide",
    "offered_tools",
    "run_tool_loop",
    "schema_of",
    "tool",
    "tool_choice_of",
    "tool_choice_problems",
    "unfinished_answer",
]
