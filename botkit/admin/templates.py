"""HTML for the operations page, escaped by default.

``fill(template, **values)`` substitutes ``$name`` placeholders (``string.Template``) and
escapes every value that is not already :class:`Html`; only this module's helpers make
``Html``. So a message, a sender's name or a model's answer containing ``<script>``
shows as text, whatever page it lands on. No page has a script (the admin app's
Content-Security-Policy forbids them), so nothing the store holds can run.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from string import Template
from urllib.parse import urlencode

from botkit.store import dollars

__all__ = [
    "Html",
    "esc",
    "fill",
    "join",
    "layout",
    "link",
    "money",
    "post_button",
    "query",
    "when",
]


class Html(str):
    """Markup that is safe to send as is (built here, its parts escaped)."""

    __slots__ = ()


def esc(value: object) -> Html:
    """``value`` as text in HTML (quotes escaped too: safe in attributes)."""
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def fill(template: str, **values: object) -> Html:
    """``template`` with ``$name`` replaced by ``values``, each escaped unless ``Html``."""
    return Html(Template(template).substitute({k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[Html], separator: str = "") -> Html:
    """Markup pieces one after another."""
    return Html(separator.join(esc(part) for part in parts))


def query(path: str, **params: object) -> str:
    """``path`` with the non-empty ``params`` as its query string."""
    kept = {k: str(v) for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def link(href: str, text: object) -> Html:
    """An ``<a>``."""
    return fill('<a href="$href">$text</a>', href=href, text=text)


def money(nanos: int | None) -> str:
    """Nano-dollars as dollars (``$0.001234``); ``unpriced`` when the price is unknown."""
    amount = dollars(nanos)
    if amount is None:
        return "unpriced"
    return f"${amount.quantize(Decimal('0.000001'))}"


def when(moment: datetime | None) -> str:
    """A timestamp in UTC, to the second."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def post_button(action: str, label: str, csrf: str, *, back: str = "") -> Html:
    """A one-button form that POSTs to ``action`` with the session's CSRF token, and
    ``back``: the page to return to."""
    return fill(
        '<form method="post" action="$action" class="inline">'
        '<input type="hidden" name="csrf" value="$csrf">'
        '<input type="hidden" name="back" value="$back">'
        '<button type="submit">$label</button></form>',
        action=action,
        csrf=csrf,
        back=back,
        label=label,
    )


_NAV = (
    ("conversations", "/admin/conversations", "Conversations"),
    ("spend", "/admin/spend", "Spend"),
    ("attention", "/admin/attention", "Needs a person"),
    ("work", "/admin/work", "Work"),
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title · botkit operations</title>
<style>$style</style></head>
<body><header><nav><strong>botkit</strong> $nav $logout</nav></header>
<main><h1>$title</h1>$notice$body</main></body></html>
"""

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6em 1.2em}
header a{color:#cfe0ff;margin-right:1em}header a.on{color:#fff;font-weight:600}
header form{float:right}main{padding:1em 1.5em;max-width:1200px}
table{border-collapse:collapse;width:100%;background:#fff;margin:.6em 0 1.2em}
th,td{border-bottom:1px solid #e3e6ea;padding:.35em .5em;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.num,th.num{text-align:right}
.text{white-space:pre-wrap;word-break:break-word;max-width:46em}
.muted{color:#6b7280}.inline{display:inline}
.status{border-radius:3px;padding:0 .35em;font-size:12px;background:#e5e7eb}
.st-failed,.st-interrupted{background:#fde2e1;color:#9b1c1c}
.st-delivered,.st-done{background:#dcfce7;color:#166534}
.st-pending,.st-processing,.st-sending,.st-streaming{background:#fef3c7;color:#92400e}
.notice{background:#e0f2fe;border:1px solid #7dd3fc;padding:.5em .8em}
.error{background:#fde2e1;border:1px solid #f5a3a0;padding:.5em .8em}
.est{color:#b45309}form.search input{margin-right:.5em}
.legend span{display:inline-block;margin-right:1em}
.swatch{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-1px}
button{cursor:pointer}
"""


def layout(
    title: str,
    body: Html,
    *,
    active: str = "",
    csrf: str | None = None,
    notice: str = "",
    error: str = "",
) -> Html:
    """A whole page: navigation (and a log-out button when logged in) around ``body``."""
    nav = join(
        fill(
            '<a href="$href" class="$on">$label</a>',
            href=href,
            label=label,
            on="on" if key == active else "",
        )
        for key, href, label in _NAV
    )
    messages = join(
        fill('<p class="$css">$text</p>', css=css, text=text)
        for css, text in (("notice", notice), ("error", error))
        if text
    )
    return fill(
        _PAGE,
        title=title,
        style=Html(STYLE),
        nav=nav if csrf is not None else Html(""),
        logout=post_button("/admin/logout", "Log out", csrf) if csrf is not None else Html(""),
        notice=messages,
        body=body,
    )
