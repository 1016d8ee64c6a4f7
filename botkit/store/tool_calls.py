"""The tool calls the model made while answering a message: stored before they run (and
only while the message is still held), so no tool runs twice for one message."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select, update

from botkit.store._section import Section
from botkit.store._statements import (
    INSERT_TOOL_CALL,
    STILL_HELD,
    held_params,
    run_fenced,
    tool_calls,
)
from botkit.store.models import utcnow
from botkit.store.records import Fence, ToolCallRecord

__all__ = ["ToolCallStore"]


class ToolCallStore(Section):
    """Tool calls by the message they answer (``store.tool_calls``)."""

    async def start(self, call: ToolCallRecord, *, held: tuple[str, Fence] | None = None) -> int:
        """Store a tool call before it runs (or, with its status and result, one answered
        without running a tool), while the messages it answers are still held.

        Args:
            call: the call; ``status`` "running" for one about to run.
            held: (owner, fence) of the messages being answered: the call is stored only
                while ``owner`` still holds every one of them, unfinished, with its token.

        Returns:
            The stored row's id.

        Raises:
            ClaimLostError: another process holds the messages now, or they were
                finished: nothing was stored, and the tool must not run.
        """
        row = {
            "message_id": call.message_id,
            "round": call.round,
            "call_id": call.call_id[:255],
            "name": call.name[:128],
            "arguments": call.arguments,
            "said": call.said,
            "status": call.status,
            "result": call.result,
            "created_at": utcnow(),
            "finished_at": None if call.status == "running" else utcnow(),
        }
        holds = held_params(held)

        def op(conn: Connection) -> int:
            run_fenced(conn, STILL_HELD, holds)
            return int(conn.execute(INSERT_TOOL_CALL, row).scalar_one())

        return await self._write("store a tool call", op)

    async def finish(self, call_id: int, status: str, result: str) -> None:
        """Store how a running tool call ended (``"done"``, ``"failed"``, ``"skipped"``)
        and what the model is told. Not fenced: the tool ran, whoever holds the message
        now is better off knowing what it did."""
        query = (
            update(tool_calls)
            .where(tool_calls.c.id == call_id)
            .values(status=status, result=result, finished_at=utcnow())
        )
        await self._write("store a tool result", lambda conn: conn.execute(query))

    async def of(self, message_ids: Sequence[int]) -> list[ToolCallRecord]:
        """The tool calls stored while answering these messages, in the order they were
        made."""
        query = (
            select(tool_calls)
            .where(tool_calls.c.message_id.in_(list(message_ids)))
            .order_by(tool_calls.c.id)
        )

        def op(conn: Connection) -> list[ToolCallRecord]:
            return [
                ToolCallRecord(
                    message_id=r.message_id,
                    round=r.round,
                    call_id=r.call_id,
                    name=r.name,
                    arguments=r.arguments,
                    said=r.said,
                    status=r.status,
                    result=r.result,
                    id=r.id,
                )
                for r in conn.execute(query)
            ]

        return await self._read("load tool calls", op)
