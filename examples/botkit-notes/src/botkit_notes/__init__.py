"""botkit-notes: notes per conversation, as commands and as tools for the model."""

from botkit_notes.plugin import NotesSettings, plugin

__all__ = ["NotesSettings", "plugin"]
