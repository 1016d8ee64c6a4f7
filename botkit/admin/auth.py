"""Who may see the operations page: a token from the environment, then a signed cookie.

``GET /admin/login`` shows a form; a ``POST`` with the right token (compared in constant
time) sets a session cookie: HttpOnly, SameSite=Strict, scoped to ``/admin``, signed with
a key derived from the token (so changing the token ends every session, and every
process sharing the token accepts it). Without a valid session, a ``GET`` of any other
``/admin`` URL is sent to the login form and anything else is answered 401. Every
``POST`` but the login carries the session's CSRF token in a hidden field; a missing or
wrong one is answered 403 and changes nothing. The token is never logged nor shown.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Middleware

from botkit.secrets import Secret

__all__ = ["COOKIE", "LOGIN", "SESSION", "Session", "Sessions", "guard", "safe_next"]

log = logging.getLogger(__name__)

COOKIE = "botkit_admin"
PREFIX = "/admin"
LOGIN = f"{PREFIX}/login"
SESSION_TTL = 12 * 3600  # seconds a login lasts
# every admin response: no scripts at all, no framing, never cached, no referrer
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in browser: its random id and the CSRF token its forms carry."""

    id: str
    csrf: str


SESSION = web.RequestKey("botkit_admin_session", Session)


class Sessions:
    """Signs and checks session cookies and CSRF tokens with a key derived from the token.

    Args:
        token: the admin token (``BOTKIT_ADMIN_TOKEN``).
        ttl: seconds a session lasts.
        clock: the time in seconds (tests move it).
    """

    def __init__(
        self, token: Secret, *, ttl: float = SESSION_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        self._digest = hashlib.sha256(token.reveal().encode()).digest()
        self._key = hmac.new(self._digest, b"botkit admin session", hashlib.sha256).digest()
        self._ttl = ttl
        self._clock = clock

    def token_matches(self, given: str) -> bool:
        """Whether ``given`` is the token, in time independent of where they differ (and
        of their lengths: digests are compared)."""
        return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), self._digest)

    def new_cookie(self) -> str:
        """A fresh session's cookie value."""
        body = f"{secrets.token_urlsafe(18)}.{int(self._clock())}"
        return f"{body}.{self._sign(body)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie value holds, or ``None`` (missing, forged, expired)."""
        if not cookie or cookie.count(".") != 2:
            return None
        body, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        session_id, issued = body.split(".")
        if not issued.isdigit() or not 0 <= self._clock() - int(issued) < self._ttl:
            return None
        return Session(session_id, self._sign(f"csrf.{session_id}"))

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()


def safe_next(target: str | None) -> str:
    """Where to go after logging in: an ``/admin`` path of this site, never elsewhere."""
    if (
        target
        and target.startswith(f"{PREFIX}/")
        and not target.startswith(LOGIN)
        and "//" not in target
        and "\\" not in target
        and target.isprintable()  # no line breaks into the Location header
    ):
        return target
    return f"{PREFIX}/conversations"


def guard(sessions: Sessions) -> Middleware:
    """The admin app's middleware: the login form is open; everything else needs a session,
    and a POST its CSRF token. Every response gets :data:`HEADERS`."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await _checked(request, handler, sessions)
        except web.HTTPException as exc:
            exc.headers.update(HEADERS)
            raise
        response.headers.update(HEADERS)
        return response

    return middleware


async def _checked(
    request: web.Request, handler: Handler, sessions: Sessions
) -> web.StreamResponse:
    if request.path == LOGIN:
        return await handler(request)
    session = sessions.read(request.cookies.get(COOKIE))
    if session is None:
        if request.method in ("GET", "HEAD"):
            raise web.HTTPFound(f"{LOGIN}?next={quote(request.path_qs, safe='/')}")
        raise web.HTTPUnauthorized(text="log in at /admin/login first")
    if request.method == "POST":
        form = await request.post()
        given = form.get("csrf")
        if not isinstance(given, str) or not hmac.compare_digest(
            given.encode(), session.csrf.encode()
        ):
            log.warning("refused an admin action without a valid CSRF token: %s", request.path)
            raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page")
    request[SESSION] = session
    return await handler(request)
