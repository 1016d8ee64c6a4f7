"""Markdown to Telegram HTML, and splitting long replies into pieces that fit."""

from __future__ import annotations

import pytest

from botkit_telegram._markdown import markdown_to_html, render_pieces, shown_length, utf16_len
from tests.fakes.telegram_api import HTMLRefused, html_text


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
        ("**bold** and __also bold__", "<b>bold</b> and <b>also bold</b>"),
        ("*italic* and _italic_", "<i>italic</i> and <i>italic</i>"),
        ("~~gone~~ ||secret||", "<s>gone</s> <tg-spoiler>secret</tg-spoiler>"),
        ("call `f(a<b)` now", "call <code>f(a&lt;b)</code> now"),
        ("snake_case_name stays", "snake_case_name stays"),
        ("2*3*4 = 24", "2*3*4 = 24"),
        ("`**not bold**`", "<code>**not bold**</code>"),
        (
            "[the docs](https://example.com/a_b_c?x=1&y=2)",
            '<a href="https://example.com/a_b_c?x=1&amp;y=2">the docs</a>',
        ),
        (
            "[wiki](https://en.wikipedia.org/wiki/Foo_(bar))",
            '<a href="https://en.wikipedia.org/wiki/Foo_(bar)">wiki</a>',
        ),
        ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),
        ("<https://t.me/botkit>", '<a href="https://t.me/botkit">https://t.me/botkit</a>'),
        ("# Title", "<b>Title</b>"),
        ("- one\n- **two**", "• one\n• <b>two</b>"),
        ("1. first\n2. second", "1. first\n2. second"),
        ("> quoted *text*\n> more", "<blockquote>quoted <i>text</i>\nmore</blockquote>"),
        ("---", "──────────"),
        (
            "```python\nif a < b:\n    print('**')\n```",
            "<pre><code class=\"language-python\">if a &lt; b:\n    print('**')</code></pre>",
        ),
        ("```\nplain <code>\n```", "<pre>plain &lt;code&gt;</pre>"),
        ("```js\nunclosed", '<pre><code class="language-js">unclosed</code></pre>'),
    ],
)
def test_markdown_renders_as_telegram_html(markdown: str, expected: str) -> None:
    rendered = markdown_to_html(markdown)
    assert rendered == expected
    html_text(rendered)  # Telegram would accept it


@pytest.mark.parametrize(
    "markdown",
    [
        "**a *b** c*",
        "***bold italic***",
        "**unclosed bold",
        "_a **b_ c**",
        "[**link**](https://x.y) and **[x](https://y.z)**",
        "`a` *`b`* **`c`**",
        "1 < 2 > 0 & <b>raw html</b> &amp;",
        "> **quote\n> continues**",
        "||**x||**",
    ],
)
def test_awkward_markdown_still_renders_valid_html(markdown: str) -> None:
    html_text(markdown_to_html(markdown))


def test_the_fake_refuses_what_telegram_refuses() -> None:
    for bad in (
        "<b>x",
        "<b><i>x</b></i>",
        "<div>x</div>",
        "a < b",
        "a & b",
        "<code><b>x</b></code>",
    ):
        with pytest.raises(HTMLRefused):
            html_text(bad)


def long_reply(chars: int) -> str:
    paragraph = (
        "Here is **a point** about `code_names` & <tags>, with *emphasis* and a "
        "[link](https://example.com/?a=1&b=2). "
    ) * 3
    text = ""
    n = 0
    while len(text) < chars:
        n += 1
        text += f"{n}. {paragraph}\n\n"
        if n % 7 == 0:
            text += "```python\n" + "x = a < b and c > d  # & so on\n" * 20 + "```\n\n"
    return text[:chars]


def test_ten_thousand_characters_split_into_ordered_valid_pieces() -> None:
    text = long_reply(10_000)
    pieces = render_pieces(text, markdown=True, limit=4096)
    assert len(pieces) >= 3
    for piece in pieces:
        assert piece.parse_mode == "HTML"
        assert shown_length(piece.body, "HTML") <= 4096
        assert utf16_len(html_text(piece.body)) <= 4096
    # in order, nothing lost: each piece's source is the next stretch of the reply
    joined = "\n".join(p.source for p in pieces).replace("```python\n", "").replace("```", "")
    assert _words(joined) == _words(text.replace("```python\n", "").replace("```", ""))


def _words(text: str) -> list[str]:
    return text.split()


def test_escaping_counts_as_one_character_like_telegram_counts() -> None:
    text = "&<>" * 1300  # 3900 characters shown, 6500 characters of HTML
    (piece,) = render_pieces(text, markdown=True, limit=4096)
    assert shown_length(piece.body, "HTML") == 3900
    assert html_text(piece.body) == text


def test_markdown_that_grows_when_rendered_is_resplit() -> None:
    text = "---\n" * 1000  # 4000 characters; each rule shows as 10
    pieces = render_pieces(text, markdown=True, limit=4096)
    assert len(pieces) >= 3
    assert all(shown_length(p.body, "HTML") <= 4096 for p in pieces)


def test_emoji_in_markdown_count_double_against_the_limit() -> None:
    text = "**😀😀** " * 1000  # 7000 code points; 4000 shown emoji are 8000 UTF-16 units
    pieces = render_pieces(text, markdown=True, limit=4096)
    assert len(pieces) >= 2
    assert all(shown_length(p.body, "HTML") <= 4096 for p in pieces)
    shown = "".join(html_text(p.body) for p in pieces).replace(" ", "")
    assert shown == "😀" * 2000


def test_emoji_count_double_against_the_limit() -> None:
    text = "😀" * 3000  # 6000 UTF-16 units
    pieces = render_pieces(text, markdown=False, limit=4096)
    assert len(pieces) == 2
    assert all(utf16_len(p.body) <= 4096 for p in pieces)
    assert "".join(p.body for p in pieces) == text


def test_plain_replies_are_not_rendered() -> None:
    (piece,) = render_pieces("**as is** <b>", markdown=False, limit=4096)
    assert piece.body == "**as is** <b>"
    assert piece.parse_mode is None


def test_empty_reply_has_no_pieces() -> None:
    assert render_pieces("", markdown=True, limit=4096) == []
