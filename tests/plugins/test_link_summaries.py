"""Links people send: fetched within limits from public addresses only (unless
configured), their text extracted and summarised, then kept for questions."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from botkit import ChatRequest, ConversationRef
from botkit.llm import OpenAIChatClient, StandInModel
from botkit.testing import FakeModel
from botkit_chat import plugin as chat
from botkit_documents import AddressPolicy, FetchError, FetchLimits, PageFetcher
from botkit_documents import plugin as documents
from botkit_documents.plugin import STAND_IN_NOTE
from botkit_documents.reading import find_links
from botkit_summary.mapreduce import MAP_PROMPT
from tests.fakes.openai_server import FakeOpenAI, completion
from tests.fakes.pages import PageServer
from tests.fakes.pdfs import text_pdf
from tests.plugins.conftest import StartBot

LOCAL = {"allowed_networks": ["127.0.0.1/32"]}

ARTICLE = b"""<!doctype html><html><head><title>Garden Notes</title>
<script>var tracking = "TRACKER-SCRIPT";</script><style>p { color: red }</style></head>
<body><nav><a href="/">NAVIGATION-LINK</a></nav>
<h1>Growing tomatoes</h1>
<p>Tomatoes need full sun and deep watering twice a week during the fruiting season.</p>
<h2>Pruning</h2>
<ul><li>Remove suckers below the first flower cluster.</li><li>Stake plants early.</li></ul>
<h2>Storage</h2>
<p>Potatoes keep for months in a dark cellar at around seven degrees.</p>
<footer>FOOTER-COPYRIGHT</footer></body></html>"""


@pytest.fixture
async def site() -> AsyncIterator[PageServer]:
    async with PageServer() as server:
        server.pages["/article"] = ("text/html; charset=utf-8", ARTICLE)
        server.pages["/image.png"] = ("image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
        yield server


def summary_of(request: ChatRequest) -> str:
    return "SUMMARY: " + " ".join(str(request.messages[-1]["content"]).split()[:3])


async def test_a_link_is_fetched_its_text_extracted_and_summarised(
    start_bot: StartBot, site: PageServer
) -> None:
    model = FakeModel().respond_with(summary_of, purpose="summary")
    settings = {"documents": LOCAL}
    async with start_bot(plugins=[documents, chat], model=model, settings=settings) as bot:
        answer = await bot.ask(f"What does this say? {site.url('/article')}")
    assert answer.startswith(f"Summary of Garden Notes ({site.url('/article')}):\n\nSUMMARY: ")
    assert answer.endswith("Ask me anything about it.")
    [request] = model.requests_for("summary")
    text = str(request.messages[1]["content"])
    assert text.startswith("# Growing tomatoes\nTomatoes need full sun")
    assert "- Remove suckers below the first flower cluster." in text
    for boilerplate in ("TRACKER", "NAVIGATION", "FOOTER", "color: red"):
        assert boilerplate not in text
    instruction = str(request.messages[0]["content"])
    assert "The document's title: Garden Notes" in instruction
    assert "The person who sent it wrote: What does this say?" in instruction
    assert site.requests == [("/article", f"127.0.0.1:{site.port}")]


async def test_the_summarize_command_reads_the_link_after_it(
    start_bot: StartBot, site: PageServer
) -> None:
    model = FakeModel().reply("- Tomatoes and potatoes.", purpose="summary")
    async with start_bot(
        plugins=[documents, chat], model=model, settings={"documents": LOCAL}
    ) as bot:
        answer = await bot.ask(f"/summarize <{site.url('/article')}>")
        usage = await bot.ask("/summarize")
    assert "- Tomatoes and potatoes." in answer
    assert usage.startswith("Send a link (/summarize https://...)")


async def test_loopback_is_refused_unless_configured(
    start_bot: StartBot, site: PageServer
) -> None:
    model = FakeModel()
    async with start_bot(plugins=[documents, chat], model=model) as bot:
        answer = await bot.ask(site.url("/article"))
    assert answer == (
        f"I couldn't read {site.url('/article')}: I don't open links to 127.0.0.1, a private "
        "or local address"
    )
    assert site.requests == []  # refused before connecting
    assert model.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://[::ffff:192.168.0.1]/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://localhost:9/",
    ],
)
async def test_private_link_local_and_other_local_addresses_are_refused(url: str) -> None:
    fetcher = PageFetcher(FetchLimits(), AddressPolicy())
    with pytest.raises(FetchError, match="private or local address"):
        await fetcher.fetch(url)


async def test_redirects_are_followed_up_to_the_limit(
    start_bot: StartBot, site: PageServer
) -> None:
    fetcher = PageFetcher(FetchLimits(max_redirects=5), AddressPolicy(["127.0.0.1/32"]))
    fetched = await fetcher.fetch(site.url("/redirect/5"))
    assert fetched.url == site.url("/article")
    assert b"Growing tomatoes" in fetched.body
    site.requests.clear()
    with pytest.raises(FetchError, match="redirected more than 5 times"):
        await fetcher.fetch(site.url("/redirect/6"))
    assert len(site.requests) == 6  # the sixth redirect's target was never asked for


async def test_a_redirect_to_a_private_address_is_refused(site: PageServer) -> None:
    fetcher = PageFetcher(FetchLimits(), AddressPolicy(["127.0.0.1/32"]))
    with pytest.raises(FetchError, match=r"10\.9\.8\.7, a private or local address"):
        await fetcher.fetch(site.url("/redirect-to?url=http://10.9.8.7/secrets"))
    with pytest.raises(FetchError, match="only open http and https links"):
        await fetcher.fetch(site.url("/redirect-to?url=file:///etc/passwd"))


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_a_page_over_the_size_limit_is_refused(site: PageServer, path: str) -> None:
    fetcher = PageFetcher(FetchLimits(max_bytes=1_000_000), AddressPolicy(["127.0.0.1/32"]))
    with pytest.raises(FetchError, match="larger than 1,000,000 bytes"):
        await fetcher.fetch(site.url(path))


async def test_a_slow_site_is_given_up_after_the_timeout(site: PageServer) -> None:
    fetcher = PageFetcher(FetchLimits(timeout=0.3), AddressPolicy(["127.0.0.1/32"]))
    with pytest.raises(FetchError, match=r"did not answer within 0\.3 s"):
        await fetcher.fetch(site.url("/slow"))


async def test_content_that_is_not_a_page_is_refused_before_it_is_read(
    start_bot: StartBot, site: PageServer
) -> None:
    async with start_bot(plugins=[documents, chat], settings={"documents": LOCAL}) as bot:
        answer = await bot.ask(site.url("/image.png"))
    assert answer.endswith(": the link is image/png, not a page")


class FixedResolver(AbstractResolver):
    """Answers from a table, as DNS would; never asks the network."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        pass


async def test_a_name_with_any_private_address_is_refused_before_connecting() -> None:
    resolver = FixedResolver({"mixed.example": ["93.184.216.34", "10.0.0.8"]})
    fetcher = PageFetcher(FetchLimits(), AddressPolicy(), resolver=resolver)
    with pytest.raises(FetchError, match=r"mixed\.example \(10\.0\.0\.8\)"):
        await fetcher.fetch("http://mixed.example/")
    assert resolver.asked == ["mixed.example"]


async def test_the_connection_goes_to_the_address_that_was_checked(site: PageServer) -> None:
    # a name resolved once, checked, and connected to: nothing resolves it a second time
    resolver = FixedResolver({"garden.example": ["127.0.0.1"]})
    fetcher = PageFetcher(FetchLimits(), AddressPolicy(["127.0.0.1/32"]), resolver=resolver)
    fetched = await fetcher.fetch(f"http://garden.example:{site.port}/article")
    assert b"Growing tomatoes" in fetched.body
    assert site.requests == [("/article", f"garden.example:{site.port}")]
    assert resolver.asked == ["garden.example"]
    refusing = PageFetcher(FetchLimits(), AddressPolicy(), resolver=resolver)
    with pytest.raises(FetchError, match="private or local"):
        await refusing.fetch(f"http://garden.example:{site.port}/article")


def test_links_are_found_without_the_punctuation_around_them() -> None:
    text = (
        "See https://example.org/a_(b) and (https://example.org/c). Also "
        "[docs](https://example.org/d?x=1&y=2), https://example.org/a_(b) again"
    )
    assert find_links(text) == [
        "https://example.org/a_(b)",
        "https://example.org/c",
        "https://example.org/d?x=1&y=2",
    ]


async def test_a_longer_message_with_a_link_is_left_to_the_chat(
    start_bot: StartBot, site: PageServer
) -> None:
    words = " ".join(["word"] * 31)
    async with start_bot(plugins=[documents, chat], settings={"documents": LOCAL}) as bot:
        answer = await bot.ask(f"{words} {site.url('/article')}")
    assert answer.startswith("echo: word word")
    assert site.requests == []


async def test_a_pdf_behind_a_link_is_read(start_bot: StartBot, site: PageServer) -> None:
    site.pages["/report.pdf"] = (
        "application/pdf",
        text_pdf([["Quarterly report", "Revenue grew by twelve percent."]], title="Q3"),
    )
    model = FakeModel().respond_with(summary_of, purpose="summary")
    async with start_bot(
        plugins=[documents, chat], model=model, settings={"documents": LOCAL}
    ) as bot:
        answer = await bot.ask(site.url("/report.pdf"))
    assert answer.startswith(f"Summary of Q3 ({site.url('/report.pdf')}):")
    [request] = model.requests_for("summary")
    assert request.messages[1]["content"] == "Quarterly report\nRevenue grew by twelve percent."


async def test_a_page_longer_than_the_window_is_summarised_map_reduce(
    start_bot: StartBot, site: PageServer
) -> None:
    paragraphs = "".join(
        f"<p>Section {i}: the committee reviewed budget line {i} and its numbers.</p>"
        for i in range(300)
    )
    site.pages["/long"] = ("text/html", f"<title>Minutes</title>{paragraphs}".encode())
    model = FakeModel(context_window=1500, max_output_tokens=300).respond_with(summary_of)
    settings = {"documents": {**LOCAL, "summary_tokens": 200}}
    async with start_bot(plugins=[documents, chat], model=model, settings=settings) as bot:
        answer = await bot.ask(site.url("/long"))
    requests = model.requests_for("summary")
    map_start = MAP_PROMPT.split("{")[0]
    maps = [r for r in requests if str(r.messages[0]["content"]).startswith(map_start)]
    assert len(maps) >= 3
    assert "of a longer document" in str(maps[0].messages[0]["content"])
    assert "parts of one document, in order" in str(requests[-1].messages[0]["content"])
    assert answer.startswith(f"Summary of Minutes ({site.url('/long')}):")


async def test_questions_are_answered_with_the_relevant_passage(
    start_bot: StartBot,
    site: PageServer,
    fake_openai: FakeOpenAI,
    openai_model: OpenAIChatClient,
) -> None:
    fake_openai.script(completion("- A page about tomatoes and potatoes."))
    settings = {"documents": {**LOCAL, "passage_tokens": 30}}
    config = {"bot": {"stream": False}}
    async with start_bot(
        plugins=[documents, chat], model=openai_model, settings=settings, config=config
    ) as bot:
        await bot.ask(site.url("/article"))
        fake_openai.script(completion("Keep them in a dark cellar."))
        answer = await bot.ask("How should I store potatoes?")
    assert answer == "Keep them in a dark cellar."
    chat_request = fake_openai.requests[-1]
    system = [m["content"] for m in chat_request.messages if m["role"] == "system"]
    documents_text = system[-1]
    assert documents_text.startswith("Documents shared earlier in this conversation")
    assert f"Document 1: Garden Notes ({site.url('/article')})" in documents_text
    assert "Potatoes keep for months in a dark cellar at around seven degrees." in documents_text
    assert "Tomatoes need full sun" not in documents_text  # an irrelevant passage
    assert "Summary: - A page about tomatoes and potatoes." in documents_text
    assert chat_request.messages[-1] == {
        "role": "user",
        "content": "How should I store potatoes?",
    }


async def test_reset_forgets_the_documents(start_bot: StartBot, site: PageServer) -> None:
    model = FakeModel().reply("- Garden tips.", purpose="summary")
    async with start_bot(
        plugins=[documents, chat], model=model, settings={"documents": LOCAL}
    ) as bot:
        await bot.ask(site.url("/article"))
        listed = await bot.ask("/documents")
        await bot.ask("what about potatoes?")
        await bot.ask("/reset")
        await bot.ask("what about potatoes?")
        after = await bot.ask("/documents")
        conversation = await bot.store.history.conversation_id(ConversationRef("test", "chat"))
        state = await bot.store.state("plugin:documents").get(f"docs:{conversation}")
    assert (
        listed
        == f"Documents I can answer questions about:\n1. Garden Notes ({site.url('/article')})"
    )
    first, second = model.requests_for("chat")
    assert any("dark cellar" in str(m["content"]) for m in first.messages)
    assert not any("dark cellar" in str(m["content"]) for m in second.messages)
    assert after.startswith("No documents in this conversation yet.")
    assert state is None


async def test_with_the_stand_in_the_page_is_kept_and_its_opening_shown(
    start_bot: StartBot, site: PageServer
) -> None:
    async with start_bot(
        plugins=[documents, chat], model=StandInModel(), settings={"documents": LOCAL}
    ) as bot:
        answer = await bot.ask(site.url("/article"))
        listed = await bot.ask("/documents")
    assert f"{STAND_IN_NOTE}\n\n# Growing tomatoes\nTomatoes need full sun" in answer
    assert "Garden Notes" in listed


async def test_only_the_newest_documents_are_kept(start_bot: StartBot, site: PageServer) -> None:
    site.pages["/other"] = ("text/html", b"<title>Other</title><p>Another page.</p>")
    settings = {"documents": {**LOCAL, "max_documents": 1}}
    async with start_bot(plugins=[documents, chat], settings=settings) as bot:
        await bot.ask(site.url("/article"))
        await bot.ask(site.url("/other"))
        listed = await bot.ask("/documents")
        unknown = await bot.ask(f"/nosuch {site.url('/article')}")
    assert listed == f"Documents I can answer questions about:\n1. Other ({site.url('/other')})"
    assert unknown.startswith("Unknown command /nosuch.")
