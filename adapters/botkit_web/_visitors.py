"""Visitor ids in a signed cookie: a random id, an HMAC of it, nothing else.

A visitor is whoever holds the cookie; there is no account. The id names the visitor's
conversation, so the signature is what keeps one visitor out of another's: a cookie
whose signature does not match (forged, from another secret, mangled) is ignored and
its holder is a new visitor.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from botkit import KeyValueState

__all__ = ["VisitorIds", "load_secret"]

_ID = re.compile(r"^[A-Za-z0-9_-]{24}$")
#: Where a secret made by botkit is kept, in the adapter's own state.
SECRET_KEY = "cookie_secret"


async def load_secret(state: KeyValueState) -> bytes:
    """The cookie secret kept in the database, made (at random) the first time.

    Processes sharing a database share it; when two make one at once, both go on with
    the one stored last (read back), so their cookies agree.
    """
    stored = await state.get(SECRET_KEY)
    if not isinstance(stored, str):
        await state.set(SECRET_KEY, secrets.token_hex(32))
        stored = await state.get(SECRET_KEY)
    return str(stored).encode()


class VisitorIds:
    """Makes and checks visitor cookies.

    Args:
        secret: the signing key.
        scope: mixed into every signature (the adapter's name), so a cookie of one web
            chat is no cookie of another sharing the secret.
    """

    def __init__(self, secret: bytes, scope: str) -> None:
        self._secret = secret
        self._scope = scope.encode()

    def new(self) -> tuple[str, str]:
        """A new visitor: ``(visitor id, cookie value)``."""
        visitor = secrets.token_urlsafe(18)  # 24 characters, 144 random bits
        return visitor, f"{visitor}.{self._sign(visitor)}"

    def check(self, cookie: str | None) -> str | None:
        """The visitor id a cookie carries, or ``None`` when it is missing or not ours."""
        if not cookie:
            return None
        visitor, _, signature = cookie.partition(".")
        if not _ID.match(visitor):
            return None
        if not hmac.compare_digest(signature.encode(), self._sign(visitor).encode()):
            return None
        return visitor

    def _sign(self, visitor: str) -> str:
        mac = hmac.new(self._secret, self._scope + b"\0" + visitor.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")
