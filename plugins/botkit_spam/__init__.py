"""A spam filter that runs before everything else, so spam costs no tokens.

Cheap heuristics first (links, known patterns, repeated text, all capitals, a sender
allow-list); the model (JSON mode) only when they are unsure. Spam is held: stored with
its verdict and reason, never answered. ``/release <id>`` lets an admin pass a false
positive on. List ``spam`` first among the plugins: middlewares run in plugin order.
"""

from botkit_spam.plugin import SpamSettings, Verdict, plugin, score_text

__all__ = ["SpamSettings", "Verdict", "plugin", "score_text"]
