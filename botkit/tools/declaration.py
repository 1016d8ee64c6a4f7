"""Declaring tools: the :class:`Tool` record, the ``/name`` command it answers, and the
:func:`tool` decorator a plugin declares it with.

Declaring only records, as every decorator of :class:`botkit.Plugin` does: the tool's
command is added to the plugin's commands, and a tool with side effects adds the
plugin's confirmation handler once (see :mod:`botkit.tools.confirmation`).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from botkit.exceptions import PluginError, RequestRejectedError
from botkit.llm import ToolCall
from botkit.messages import Message, Reply
from botkit.plugin import HandlerResult, Plugin
from botkit.tools.arguments import ToolArgumentsError, build, check, command_values, schema_of
from botkit.tools.confirmation import confirmation_of

if TYPE_CHECKING:
    from botkit.context import Context

__all__ = ["Tool", "ToolCommand", "ToolFunction", "offered_tools", "tool"]

ToolFunction = Callable[[Any, "Context"], Awaitable[HandlerResult]]


@dataclasses.dataclass(frozen=True, slots=True)
class Tool:
    """A command the model may call.

    Attributes:
        name: the command's name, also the function's name.
        plugin: the plugin that declared it.
        description: what it does, for ``/help`` and for the model.
        parameters: the JSON schema of its arguments (an object).
        side_effects: it changes something; the model's call waits for the user's "yes".
        arguments: the dataclass the arguments are built into, or ``None`` for a plain
            ``dict`` (a tool declared with a JSON schema).
        func: the handler, ``(arguments, ctx)``.
        confirm: the question asked before a side-effect call, formatted with the
            arguments (``"Delete note {id}?"``); a default names the command.
        command_parser: reads what a person typed after ``/name`` into the arguments'
            mapping, instead of the generic words-and-``key=value`` reading.
    """

    name: str
    plugin: str
    description: str
    parameters: Mapping[str, Any]
    side_effects: bool
    arguments: type[Any] | None
    func: ToolFunction
    confirm: str | None = None
    command_parser: Callable[[str], Mapping[str, Any]] | None = None

    def definition(self) -> dict[str, Any]:
        """The function tool in the chat-completions wire format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }

    def parse(self, value: str | Mapping[str, Any]) -> Any:
        """Arguments the model wrote (JSON text) or a mapping, checked and built.

        Raises:
            ToolArgumentsError: not JSON, not an object, or not what the schema says.
        """
        if isinstance(value, str):
            try:
                value = ToolCall("", self.name, value).parsed_arguments()
            except RequestRejectedError as exc:
                raise ToolArgumentsError(
                    f"the arguments are not a JSON object ({exc.reason})"
                ) from None
        check(self.parameters, value)
        if self.arguments is None:
            return dict(value)
        try:
            return build(self.arguments, value)
        except (TypeError, ValueError) as exc:
            raise ToolArgumentsError(str(exc)) from None

    def parse_command(self, text: str) -> Any:
        """Arguments a person typed after ``/name``: a JSON object, or words and
        ``key=value`` pairs, positional words filling the fields in order (the last text
        field takes the rest of the line).

        Raises:
            ToolArgumentsError: as for :meth:`parse`, or what the tool's own
                ``command_parser`` raised.
        """
        text = text.strip()
        if self.command_parser is not None:
            return self.parse(self.command_parser(text))
        if text.startswith("{"):
            return self.parse(text)
        return self.parse(command_values(text, self.parameters))

    def usage(self) -> str:
        """``/name <city> [days=…]``: the fields, required ones in angle brackets."""
        required = set(self.parameters.get("required") or ())
        parts = [
            f"<{name}>" if name in required else f"[{name}=…]"
            for name in (self.parameters.get("properties") or {})
        ]
        return " ".join([f"/{self.name}", *parts])


class ToolCommand:
    """The command handler a tool registers: ``/name arguments`` typed by a person."""

    def __init__(self, tool: Tool) -> None:
        self.tool = tool
        self.__doc__ = tool.description
        self.__name__ = tool.name

    async def __call__(self, message: Message, ctx: Context) -> HandlerResult:
        """Parse the arguments and run the tool; a usage line when they do not fit."""
        try:
            arguments = self.tool.parse_command(ctx.args)
        except ToolArgumentsError as exc:
            return Reply(f"{exc}\nUsage: {self.tool.usage()}", markup="plain")
        return await self.tool.func(arguments, ctx)


def tool(
    plugin: Plugin,
    name: str,
    *,
    description: str = "",
    arguments: type[Any] | Mapping[str, Any] | None = None,
    side_effects: bool = False,
    confirm: str | None = None,
    aliases: tuple[str, ...] = (),
    command_parser: Callable[[str], Mapping[str, Any]] | None = None,
) -> Callable[[ToolFunction], ToolFunction]:
    """Declare a command with typed arguments that the model may call as a tool.

    The handler takes ``(arguments, ctx)``. Its arguments are declared by ``arguments``
    (a dataclass, or a JSON schema of an object: the handler then gets a ``dict``), or
    else by the annotation of its first parameter.

    A tool with ``side_effects`` also gives its plugin the message handler
    ``confirm_tool_call`` (:class:`botkit.tools.confirmation.ToolConfirmation`, added
    once per plugin, listed in ``plugin.message_handlers`` and by ``botkit
    check-config``): it answers the user's "yes" or "no" to a call the model asked for.

    Args:
        plugin: the plugin the command belongs to.
        name: the command's name (``/name``), also the function's name for the model.
        description: for ``/help`` and the model; by default the handler's first
            docstring line.
        arguments: a dataclass or a JSON schema (``{"type": "object", ...}``).
        side_effects: the command changes something: when the model calls it, the user
            is asked to confirm first.
        confirm: the question asked before a side-effect call, formatted with the
            arguments' fields (``"Delete note {id}?"``).
        aliases: other command names.
        command_parser: reads the text a person types after ``/name`` into the
            arguments (a mapping, then checked like the model's); it raises
            ``ToolArgumentsError`` with what is wrong. By default, words and
            ``key=value`` pairs fill the fields in order.

    Raises:
        PluginError: the arguments cannot be described as a JSON schema, or the name is
            not a valid command name.
    """

    def register(func: ToolFunction) -> ToolFunction:
        declared = arguments if arguments is not None else _annotated_arguments(func, name)
        if isinstance(declared, type):
            if not dataclasses.is_dataclass(declared):
                raise PluginError(f"tool {name!r}: {declared.__name__} is not a dataclass")
            try:
                schema = schema_of(declared)
            except TypeError as exc:
                raise PluginError(f"tool {name!r}: {exc}") from None
            target: type[Any] | None = declared
        else:
            schema = dict(declared)
            if schema.get("type") != "object":
                raise PluginError(f'tool {name!r}: its JSON schema must have "type": "object"')
            # imported here: a bot whose tools are dataclasses never loads it (~3 MiB)
            import jsonschema.exceptions
            import jsonschema.validators

            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.exceptions.SchemaError as exc:
                raise PluginError(f"tool {name!r}: invalid JSON schema: {exc.message}") from None
            target = None
        doc = (func.__doc__ or "").strip().splitlines()
        spec = Tool(
            name=name,
            plugin=plugin.name,
            description=description or (doc[0] if doc else name),
            parameters=schema,
            side_effects=side_effects,
            arguments=target,
            func=func,
            confirm=confirm,
            command_parser=command_parser,
        )
        plugin.on_command(name, description=spec.description, aliases=aliases)(ToolCommand(spec))
        if side_effects:
            confirmation_of(plugin).add(spec)
        return func

    return register


def offered_tools(ctx: Context) -> list[Tool]:
    """Every tool the loaded plugins declared, in command order."""
    return [c.func.tool for c in ctx.commands if isinstance(c.func, ToolCommand)]


def _annotated_arguments(func: ToolFunction, name: str) -> type[Any]:
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:
        raise PluginError(f"tool {name!r}: cannot read the handler's annotations: {exc}") from None
    code = getattr(func, "__code__", None)
    first = code.co_varnames[0] if code is not None and code.co_argcount else None
    hint = hints.get(first) if first else None
    if not isinstance(hint, type):
        raise PluginError(
            f"tool {name!r}: annotate the handler's first parameter with a dataclass, "
            "or pass arguments=..."
        )
    return hint
