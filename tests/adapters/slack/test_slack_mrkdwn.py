"""Markdown to mrkdwn, escaping exactly once, splitting to size, and inbound text."""

from __future__ import annotations

import pytest

from botkit_slack._mrkdwn import escape, inbound_text, render, render_pieces


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold**", "*bold*"),
        ("__bold__", "*bold*"),
        ("*italic*", "_italic_"),
        ("_italic_", "_italic_"),
        ("***both***", "*_both_*"),
        ("~~struck~~", "~struck~"),
        ("**bold with *italic* inside**", "*bold with _italic_ inside*"),
        ("[the docs](https://api.slack.com/)", "<https://api.slack.com/|the docs>"),
        ("<https://example.com/a>", "<https://example.com/a>"),
        ("# Heading", "*Heading*"),
        ("### **Already bold**", "*Already bold*"),
        ("- item", "• item"),
        ("  * nested", "  • nested"),
        ("> quoted **text**", "> quoted *text*"),
        ("---", "───"),
        ("snake_case_name and 2 * 3 * 4", "snake_case_name and 2 * 3 * 4"),
        ("`a < b`", "`a &lt; b`"),
        ("1. first", "1. first"),
    ],
)
def test_markdown_becomes_slack_mrkdwn(markdown: str, mrkdwn: str) -> None:
    assert render(markdown) == mrkdwn


def test_code_blocks_are_kept_escaped_and_lose_their_language_tag() -> None:
    markdown = "Look:\n```python\nif a < b and c > d: x = **kw\n```\ndone **now**"

    assert render(markdown) == "Look:\n```\nif a &lt; b and c &gt; d: x = **kw\n```\ndone *now*"


@pytest.mark.parametrize(
    "hostile",
    [
        "<!channel> everyone look",
        "<!here|here>",
        "<@U024BE7LH> is fired",
        "<https://evil.example|https://bank.example>",
        "[click](javascript:alert(1))",
        "[ping](!channel)",
        "[x](https://ok.example/|<!everyone>)",
        "&lt;!channel&gt;",
    ],
)
def test_nothing_in_a_reply_can_become_a_mention_or_a_fake_link(hostile: str) -> None:
    rendered = render(hostile)

    assert "<" not in rendered  # so no <!channel>, <@U…> or <url|label> of its own
    assert ">" not in rendered


def test_a_pipe_in_a_link_cannot_change_its_label() -> None:
    assert render("[x](https://ok.example/a|b)") == "<https://ok.example/a%7Cb|x>"


def test_escaping_happens_exactly_once() -> None:
    assert render("Tom & Jerry <3 &amp;") == "Tom &amp; Jerry &lt;3 &amp;amp;"
    assert render("a & b", "plain") == "a &amp; b"
    assert escape("&<>") == "&amp;&lt;&gt;"


def test_plain_replies_are_only_escaped() -> None:
    assert render("**not bold** & <b>", "plain") == "**not bold** &amp; &lt;b&gt;"


def test_pieces_stay_within_the_limit_after_escaping_grows_them() -> None:
    text = "&" * 5000  # 5,000 characters that render as 25,000

    pieces = render_pieces(text, "markdown", 3900)

    assert all(len(p) <= 3900 for p in pieces)
    assert "".join(pieces) == "&amp;" * 5000


def test_a_code_block_split_across_pieces_is_closed_and_reopened() -> None:
    code = "```python\n" + "\n".join(f"line_{i} = {i}" for i in range(600)) + "\n```"

    pieces = render_pieces(code, "markdown", 2000)

    assert len(pieces) > 1
    for piece in pieces:
        assert piece.startswith("```\n")
        assert piece.endswith("```")
        assert "python" not in piece


def test_an_empty_reply_has_no_pieces() -> None:
    assert render_pieces("", "markdown", 3900) == []
    assert render_pieces("   \n", "markdown", 3900) == []


def test_inbound_text_drops_the_bots_mention_and_reads_slack_markup() -> None:
    text = (
        "<@W111> compare &lt;a&gt; &amp;amp; <@U222|bob> with <@U333> in <#C1|general>, "
        "<!here>, <https://x.example/?a=1&amp;b=2|the spec> and <https://y.example>"
    )

    assert inbound_text(text, bot_user_id="W111", user_name={"U333": "Carol"}) == (
        "compare <a> &amp; @bob with @Carol in #general, @here, "
        "[the spec](https://x.example/?a=1&b=2) and https://y.example"
    )


def test_inbound_text_keeps_code_indentation_and_a_mention_mid_sentence() -> None:
    assert inbound_text("hey <@W111> look:\n    indented", bot_user_id="W111") == (
        "hey look:\n    indented"
    )
