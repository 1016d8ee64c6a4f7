"""Slack's request signature (``X-Slack-Signature``), checked over the exact bytes received.

slack_sdk's ``SignatureVerifier`` decodes the body as UTF-8 before hashing, so a body that
is not UTF-8 raises instead of failing the check; anyone could send one. This checks the
bytes themselves, so such a body is simply unsigned (401), in every state of the adapter.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

__all__ = ["MAX_AGE", "SignatureCheck"]

#: Slack's rule: a request whose timestamp is more than five minutes off is refused
#: (a replayed request).
MAX_AGE = 5 * 60


class SignatureCheck:
    """Checks ``v0=HMAC-SHA256(secret, "v0:" + timestamp + ":" + body)``.

    Args:
        secret: the app's signing secret.
        clock: the current time in seconds (tests pass their own).
    """

    def __init__(self, secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret.encode()
        self._clock = clock

    def valid(self, body: bytes, timestamp: str, signature: str) -> bool:
        """Whether ``signature`` signs ``body`` at ``timestamp``, and that is recent."""
        # at most 12 digits: int() refuses (raises on) a few thousand
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
            return False
        if abs(self._clock() - int(timestamp)) > MAX_AGE:
            return False
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))
