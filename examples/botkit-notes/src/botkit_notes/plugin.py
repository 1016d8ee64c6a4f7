"""The notes plugin: ``/note``, ``/notes`` and ``/forget``, each also a tool for the model."""

from __future__ import annotations

from dataclasses import dataclass

from botkit import Context, Plugin, tool

__all__ = ["NotesSettings", "plugin"]


@dataclass(frozen=True, slots=True)
class NotesSettings:
    """``[plugins.notes]``.

    Attributes:
        max_notes: the most notes one conversation keeps; the oldest go first.
    """

    max_notes: int = 50


plugin = Plugin("notes", description="Notes kept per conversation", settings_class=NotesSettings)


@dataclass(frozen=True)
class NoteArgs:
    """Arguments of /note.

    Attributes:
        text: what to note, in a sentence.
    """

    text: str


@dataclass(frozen=True)
class ForgetArgs:
    """Arguments of /forget.

    Attributes:
        number: the note's number, as /notes shows it.
    """

    number: int


@dataclass(frozen=True)
class NoArgs:
    """No arguments."""


def _key(ctx: Context) -> str:
    return f"notes:{ctx.conversation_id}"


@tool(plugin, "note", side_effects=True, confirm="Shall I note {text!r}?")
async def note(args: NoteArgs, ctx: Context) -> str:
    """Keep a note in this conversation."""
    text = " ".join(args.text.split())
    if not text:
        return "Nothing to note."
    notes: list[str] = await ctx.state.get(_key(ctx), [])
    notes = [*notes, text][-ctx.settings_as(NotesSettings).max_notes :]
    await ctx.state.set(_key(ctx), notes)
    return f"Noted ({len(notes)}): {text}"


@tool(plugin, "notes")
async def list_notes(args: NoArgs, ctx: Context) -> str:
    """List the notes kept in this conversation."""
    notes: list[str] = await ctx.state.get(_key(ctx), [])
    if not notes:
        return "No notes yet."
    return "\n".join(f"{n}. {text}" for n, text in enumerate(notes, 1))


@tool(plugin, "forget", side_effects=True, confirm="Shall I forget note {number}?")
async def forget(args: ForgetArgs, ctx: Context) -> str:
    """Forget one note, by its number."""
    notes: list[str] = await ctx.state.get(_key(ctx), [])
    if not 1 <= args.number <= len(notes):
        return f"There is no note {args.number}."
    gone = notes.pop(args.number - 1)
    await ctx.state.set(_key(ctx), notes)
    return f"Forgot: {gone}"
