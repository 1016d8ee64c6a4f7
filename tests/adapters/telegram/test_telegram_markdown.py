"""Markdown to Telegram text plus entities, and splitting long replies into pieces that fit."""

from __future__ import annotations

from typing import Any

import pytest

from botkit_telegram._markdown import Piece, render_pieces, utf16_len
from tests.fakes.telegram_api import EntitiesRefused, check_entities, spans


def render(markdown: str) -> Piece:
    (piece,) = render_pieces(markdown, markdown=True, limit=4096)
    return piece


def entity_dicts(piece: Piece) -> list[dict[str, Any]]:
    return [e.to_dict() for e in piece.entities]


def shown(piece: Piece) -> set[tuple[str, str]]:
    """What the user sees formatted, checked first as Telegram checks entities."""
    entities = check_entities(piece.text, entity_dicts(piece))
    return set(spans(piece.text, entities))


@pytest.mark.parametrize(
    ("markdown", "text", "formatted"),
    [
        ("***both***", "both", {("bold", "both"), ("italic", "both")}),
        (
            "**bold *and italic***",
            "bold and italic",
            {("bold", "bold and italic"), ("italic", "and italic")},
        ),
        (r"\*lit\* and \_lit\_", "*lit* and _lit_", set()),
        (
            "**bold across\ntwo lines**",
            "bold across\ntwo lines",
            {("bold", "bold across\ntwo lines")},
        ),
        ("~~gone~~ ||secret||", "gone secret", {("strikethrough", "gone"), ("spoiler", "secret")}),
        ("call `f(a<b)` now", "call f(a<b) now", {("code", "f(a<b)")}),
        ("`**not bold**`", "**not bold**", {("code", "**not bold**")}),
        ("a < b && c > d", "a < b && c > d", set()),
        ("replace <your-token> and <b>this</b>", "replace <your-token> and <b>this</b>", set()),
        ("<div>\nkept\n</div>", "<div>\nkept\n</div>", set()),
        (
            "`<b>` and <https://t.me/x>",
            "<b> and https://t.me/x",
            {("code", "<b>"), ("text_link", "https://t.me/x")},
        ),
        ("snake_case_name stays", "snake_case_name stays", set()),
        ("😀👍🏽 then **bold**", "😀👍🏽 then bold", {("bold", "bold")}),
        (
            "> quoted *text*\n> more",
            "quoted text\nmore",
            {("blockquote", "quoted text\nmore"), ("italic", "text")},
        ),
        ("> outer\n> > inner", "outer\ninner", {("blockquote", "outer\ninner")}),
        ("[`code` in a link](https://x.y)", "code in a link", {("text_link", "code in a link")}),
        ("[x](javascript:alert(1)) stays text", "x stays text", set()),
        ("# Title", "Title", {("bold", "Title"), ("underline", "Title")}),
    ],
)
def test_markdown_renders_as_the_model_meant(
    markdown: str, text: str, formatted: set[tuple[str, str]]
) -> None:
    piece = render(markdown)
    assert piece.text == text
    assert shown(piece) == formatted


@pytest.mark.parametrize(
    ("markdown", "code", "language"),
    [
        ("```python\nif a < b:\n    print('**')\n```", "if a < b:\n    print('**')", "python"),
        ("~~~\nplain <code> *x*\n~~~", "plain <code> *x*", None),
        ("~~~js\nlet a = 1;\n~~~", "let a = 1;", "js"),
        ("```js\nunclosed", "unclosed", "js"),
        ("~~~html\n<b>x</b>\n```\n~~~", "<b>x</b>\n```", "html"),
    ],
)
def test_both_fence_kinds_become_code_blocks(
    markdown: str, code: str, language: str | None
) -> None:
    piece = render(markdown)
    assert piece.text == code
    (entity,) = piece.entities
    assert (entity.type, entity.offset, entity.length) == ("pre", 0, utf16_len(code))
    assert entity.language == language


def test_a_link_with_parentheses_keeps_its_whole_url() -> None:
    piece = render("see [wiki](https://en.wikipedia.org/wiki/Foo_(bar)) now")
    assert piece.text == "see wiki now"
    (link,) = piece.entities
    assert link.url == "https://en.wikipedia.org/wiki/Foo_(bar)"
    assert shown(piece) == {("text_link", "wiki")}


def test_entities_after_emoji_count_utf16_units() -> None:
    piece = render("🎉🎉 **done** 👨‍👩‍👧 `x`")
    bold, code = sorted(piece.entities, key=lambda e: e.offset)
    assert (bold.offset, bold.length) == (5, 4)  # two emoji are four UTF-16 units
    assert code.offset == utf16_len("🎉🎉 done 👨‍👩‍👧 ")
    assert shown(piece) == {("bold", "done"), ("code", "x")}


def test_a_table_becomes_an_aligned_code_block() -> None:
    piece = render("| name | qty |\n|---|---:|\n| apples | 3 |\n| kiwi | 12 |")
    rows = piece.text.split("\n")
    assert [r.split("|")[0].strip() for r in rows if "|" in r] == ["name", "apples", "kiwi"]
    assert len({r.index("|") for r in rows if "|" in r}) == 1  # columns line up in monospace
    assert shown(piece) == {("pre", piece.text)}


@pytest.mark.parametrize(
    "markdown",
    [
        "**a *b** c*",
        "**unclosed bold",
        "_a **b_ c**",
        "[**link**](https://x.y) and **[x](https://y.z)**",
        "`a` *`b`* **`c`**",
        "1 < 2 > 0 & <b>raw html</b> &amp;",
        "> **quote\n> continues**",
        "||**x||**",
        "> a\n> > b\n> > > c",
        "- [ ] task\n- [x] **done**",
        "$x^2$ and \\(\\alpha\\)",
    ],
)
def test_awkward_markdown_still_gives_entities_telegram_accepts(markdown: str) -> None:
    for piece in render_pieces(markdown, markdown=True, limit=4096):
        check_entities(piece.text, entity_dicts(piece))


def long_reply(chars: int) -> str:
    paragraph = (
        "Here is **a point** about `code_names` & <tags>, with *emphasis*, 😀 and a "
        "[link](https://example.com/?a=1&b=2). "
    ) * 3
    text, n = "", 0
    while len(text) < chars:
        n += 1
        text += f"{n}. {paragraph}\n\n"
        if n % 7 == 0:
            text += "```python\n" + "x = a < b and c > d  # & so on\n" * 20 + "```\n\n"
    return text[:chars]


def test_a_long_reply_splits_into_ordered_pieces_telegram_accepts() -> None:
    text = long_reply(14_000)  # about 11,000 shown once the markers are gone
    pieces = render_pieces(text, markdown=True, limit=4096)
    assert len(pieces) >= 3
    for piece in pieces:
        assert 0 < utf16_len(piece.text) <= 4096
        assert piece.text == piece.text.strip()
        check_entities(piece.text, entity_dicts(piece))
    whole = render_pieces(text, markdown=True, limit=100_000)[0].text
    assert " ".join(p.text for p in pieces).split() == whole.split()


def test_bold_crossing_a_split_is_cut_into_both_pieces_and_rebased() -> None:
    lines = [f"😀 line {n} of a long bold passage" for n in range(150)]
    text = "intro\n\n**" + "\n".join(lines) + "**\n\nafter"
    first, second = render_pieces(text, markdown=True, limit=4096)
    assert shown(first) == {("bold", first.text[len("intro\n\n") :])}
    (bold,) = second.entities
    assert bold.offset == 0
    assert shown(second) == {("bold", second.text[: -len("\n\nafter")])}
    assert utf16_len(first.text) <= 4096
    assert second.text.startswith("😀 line")


def test_a_code_block_crossing_a_split_keeps_its_language_in_both_pieces() -> None:
    text = "```python\n" + "print('hello, world')\n" * 300 + "```"
    pieces = render_pieces(text, markdown=True, limit=4096)
    assert len(pieces) == 2
    for piece in pieces:
        (block,) = piece.entities
        assert (block.type, block.language, block.offset) == ("pre", "python", 0)
        assert block.length == utf16_len(piece.text)
    assert sum(p.text.count("print(") for p in pieces) == 300


def test_a_line_longer_than_the_limit_is_cut_inside_it() -> None:
    text = "😀" * 3000  # 6000 UTF-16 units, no line break to split at
    pieces = render_pieces(text, markdown=False, limit=4096)
    assert [utf16_len(p.text) for p in pieces] == [4096, 1904]
    assert "".join(p.text for p in pieces) == text


def test_plain_replies_are_not_rendered() -> None:
    (piece,) = render_pieces("**as is** <b>", markdown=False, limit=4096)
    assert piece == Piece("**as is** <b>")
    assert piece.telegram_entities() is None


def test_empty_reply_has_no_pieces() -> None:
    assert render_pieces("", markdown=True, limit=4096) == []
    assert render_pieces("  \n\n ", markdown=False, limit=4096) == []


@pytest.mark.parametrize(
    "entities",
    [
        [{"type": "bold", "offset": 0, "length": 9}],  # past the end
        [{"type": "bold", "offset": 1, "length": 2}],  # starts inside the emoji's pair
        [{"type": "bold", "offset": 0, "length": 0}],
        [{"type": "blink", "offset": 0, "length": 2}],
        [{"type": "text_link", "offset": 0, "length": 2}],
        [{"type": "bold", "offset": 0, "length": 4}, {"type": "code", "offset": 2, "length": 4}],
        [{"type": "pre", "offset": 0, "length": 6}, {"type": "bold", "offset": 2, "length": 2}],
        [
            {"type": "blockquote", "offset": 0, "length": 6},
            {"type": "blockquote", "offset": 2, "length": 2},
        ],
        [
            {"type": "text_link", "url": "https://x.y", "offset": 0, "length": 6},
            {"type": "code", "offset": 2, "length": 2},
        ],
    ],
)
def test_the_fake_refuses_entities_telegram_refuses(entities: list[dict[str, Any]]) -> None:
    with pytest.raises(EntitiesRefused):
        check_entities("😀abcd", entities)  # six UTF-16 units


def test_the_fake_accepts_nesting_telegram_allows() -> None:
    check_entities(
        "😀abcd",
        [
            {"type": "blockquote", "offset": 0, "length": 6},
            {"type": "bold", "offset": 2, "length": 4},
            {"type": "code", "offset": 2, "length": 2},
            {"type": "italic", "offset": 2, "length": 2},
        ],
    )
