"""Markdown to HTML for the chat page: the subset models write, and nothing unsafe."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from botkit_web._markdown import render, render_plain

ALLOWED = {"p", "br", "strong", "em", "del", "code", "pre", "a", "ul", "ol", "li",
           "blockquote", "h3", "h4", "h5", "h6", "hr"}  # fmt: skip


class _Elements(HTMLParser):
    """Every element a browser would build from the HTML, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "**<b onmouseover=alert(1)>bold</b>**",
        "`<script>` and ```<script>```",
        "```\n</code></pre><script>alert(1)</script>\n```",
        '[click](https://example.com/"onmouseover="alert(1))',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert`1`)",
        "[click](data:text/html,<script>alert(1)</script>)",
        "https://example.com/<script>alert(1)</script>",
        'https://example.com/"><svg onload=alert(1)>',
        "# <iframe src=javascript:alert(1)>",
        "> <style>body{display:none}</style>",
        "- <a href=javascript:alert(1)>x</a>",
        "a\x00b <x>",
    ],
)
def test_no_markup_from_the_text_survives(text: str) -> None:
    seen = _Elements()
    seen.feed(render(text))
    seen.close()
    assert {tag for tag, _ in seen.elements} <= ALLOWED
    for _, attributes in seen.elements:
        assert {name for name, _ in attributes} <= {"href", "target", "rel"}
        for name, value in attributes:
            if name == "href":
                assert (value or "").startswith(("https://", "http://", "mailto:")), value
    assert "\x00" not in render(text)


def test_the_subset_models_write() -> None:
    text = (
        "# Plan\n\nFirst **bold**, *italic*, _also_, ~~gone~~ and `code`.\n"
        "Second line; snake_case_name stays.\n\n"
        "- one\n- [two](https://example.com/a_b?x=1&y=2)\n\n"
        "1. first\n2. second\n\n"
        "> quoted\n\n"
        "```python\nif a < b:\n    print('*not bold*')\n```\n\n"
        "See https://example.com/docs."
    )
    assert render(text) == (
        "<h3>Plan</h3>"
        "<p>First <strong>bold</strong>, <em>italic</em>, <em>also</em>, <del>gone</del> and "
        "<code>code</code>.<br>Second line; snake_case_name stays.</p>"
        '<ul><li>one</li><li><a href="https://example.com/a_b?x=1&amp;y=2" target="_blank" '
        'rel="noopener noreferrer nofollow">two</a></li></ul>'
        "<ol><li>first</li><li>second</li></ol>"
        "<blockquote><p>quoted</p></blockquote>"
        "<pre><code>if a &lt; b:\n    print(&#x27;*not bold*&#x27;)</code></pre>"
        '<p>See <a href="https://example.com/docs" target="_blank" '
        'rel="noopener noreferrer nofollow">https://example.com/docs</a>.</p>'
    )


def test_an_answer_cut_off_mid_code_block_renders_as_far_as_it_goes() -> None:
    assert render("Here:\n```\nx = 1 <") == "<p>Here:</p><pre><code>x = 1 &lt;</code></pre>"


def test_a_link_to_anything_but_the_web_or_mail_stays_text() -> None:
    assert render("[x](ftp://host/file)") == "<p>[x](ftp://host/file)</p>"
    assert render("[x](/relative)") == "<p>[x](/relative)</p>"
    assert 'href="mailto:a@example.com"' in render("[mail](mailto:a@example.com)")


def test_plain_text_is_escaped_with_its_lines_kept() -> None:
    assert render_plain("a <b> **c**\nd\n\ne") == "<p>a &lt;b&gt; **c**<br>d</p><p>e</p>"
