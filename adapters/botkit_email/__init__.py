"""The email channel: IMAP in, SMTP out, with RFC 3834 loop safety.

Enable it as ``[adapters.email]`` (entry point ``email = "botkit_email:EmailAdapter"``).
Mail that must not be answered is stored as skipped, with the reason, and never reaches
a handler or the model.
"""

from botkit_email.adapter import EmailAdapter
from botkit_email.settings import EmailSettings

__all__ = ["EmailAdapter", "EmailSettings"]
