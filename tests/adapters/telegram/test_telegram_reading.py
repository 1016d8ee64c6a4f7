"""Updates read through PTB's typed ``Update`` where it parses them, from JSON where not."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from botkit import Secret
from botkit_telegram import TelegramSettings
from botkit_telegram import _updates as updates
from botkit_telegram._reading import NotReadable, facts_from_json, facts_from_ptb
from botkit_telegram._updates import Accept, BotIdentity, read_update
from tests.adapters.telegram.support import CORPUS, corpus

ME = BotIdentity(id=635392558, username="opsdroid_bot")
GROUP = -1001417735217
SHARED = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "telegram"
#: What each corpus update became before updates were read through PTB (the dict reader
#: alone), generated once from that code: the typed reader must give the same messages.
EXPECTED = json.loads((Path(__file__).parent / "corpus-messages.json").read_text("utf-8"))
PTB_READS = [
    "01-private-text",
    "90-DERIVED-supergroup-mention-of-bot",
    "91-DERIVED-supergroup-reply-to-bot",
]
PTB_REFUSES = ["02-start-command-private-official-docs", "05-photo-with-caption-private"]


def corpus_files() -> list[Path]:
    files = sorted(CORPUS.glob("*.json"))
    if SHARED.is_dir():  # the project's shared corpus, where the checkout has it
        files += sorted(SHARED.glob("*.json"))
    return files


def read(update: dict[str, Any]) -> Any:
    return read_update(
        update, channel="telegram", me=ME, settings=TelegramSettings(token=Secret("1:x"))
    )


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_every_corpus_update_becomes_the_message_it_did_before(path: Path) -> None:
    update = json.loads(path.read_text("utf-8"))
    pristine = copy.deepcopy(update)
    decision = read(update)
    assert isinstance(decision, Accept)
    message = dataclasses.asdict(decision.message)
    assert message.pop("raw") == pristine  # the payload is kept whole, untouched by PTB
    message.pop("received_at")
    message.pop("id")
    assert json.loads(json.dumps(message)) == EXPECTED[path.stem]
    assert update == pristine


def test_the_corpus_copy_matches_the_shared_corpus() -> None:
    if not SHARED.is_dir():
        pytest.skip("no shared corpus beside this checkout")
    for path in sorted(SHARED.glob("*.json")):
        assert json.loads(path.read_text("utf-8")) == corpus(path.stem)


@pytest.mark.parametrize("name", PTB_READS)
def test_ptb_reads_current_payloads_and_finds_what_the_json_reader_finds(name: str) -> None:
    update = corpus(name)
    assert facts_from_ptb(update) == facts_from_json(update)


@pytest.mark.parametrize("name", PTB_REFUSES)
def test_older_payloads_ptb_refuses_are_read_from_the_json(name: str) -> None:
    update = corpus(name)
    with pytest.raises(NotReadable):
        facts_from_ptb(update)
    assert isinstance(read(update), Accept)


def test_read_update_takes_ptbs_reading_where_it_has_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_json(update: Any) -> Any:
        raise AssertionError("the JSON reader was used")

    monkeypatch.setattr(updates, "facts_from_json", no_json)
    assert isinstance(read(corpus("01-private-text")), Accept)
    with pytest.raises(AssertionError, match="JSON reader"):
        read(corpus("02-start-command-private-official-docs"))


def test_a_shape_ptb_rejects_goes_through_the_json_reader() -> None:
    update = copy.deepcopy(corpus("01-private-text"))
    update["message"]["date"] = "yesterday"  # not a Unix time: PTB cannot build the Message
    with pytest.raises(NotReadable):
        facts_from_ptb(update)
    decision = read(update)
    assert isinstance(decision, Accept)
    assert decision.message.text == "Hi, world!"


def variants() -> dict[str, dict[str, Any]]:
    """Payloads PTB takes, each exercising another part of the readers."""
    base = corpus("01-private-text")
    group = corpus("90-DERIVED-supergroup-mention-of-bot")
    out: dict[str, dict[str, Any]] = {}

    def variant(name: str, source: dict[str, Any], **message: Any) -> None:
        update = copy.deepcopy(source)
        for key, value in message.items():
            if value is None:
                update["message"].pop(key, None)
            else:
                update["message"][key] = value
        out[name] = update

    sticker = {
        "file_id": "CAAC",
        "file_unique_id": "AgAD",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": True,
        "is_video": False,
        "file_size": 2048,
    }
    variant("sticker", base, text=None, sticker=sticker)
    variant(
        "document with caption entities",
        base,
        text=None,
        caption="see @opsdroid_bot",
        caption_entities=[{"type": "mention", "offset": 4, "length": 13}],
        document={
            "file_id": "BQAC",
            "file_unique_id": "AgADdoc",
            "file_name": "r.pdf",
            "mime_type": "application/pdf",
            "file_size": 1234,
        },
    )
    variant(
        "voice",
        base,
        text=None,
        voice={"file_id": "AwAC", "file_unique_id": "AgADv", "duration": 3, "file_size": 900},
    )
    variant(
        "photo sizes",
        base,
        caption="look",
        photo=[
            {"file_id": "a", "file_unique_id": "ua", "width": 90, "height": 90, "file_size": 100},
            {
                "file_id": "b",
                "file_unique_id": "ub",
                "width": 800,
                "height": 800,
                "file_size": 900,
            },
        ],
    )
    variant("forum topic", group, message_thread_id=77, is_topic_message=True)
    variant(
        "anonymous admin", group, sender_chat={"id": GROUP, "type": "supergroup", "title": "Ops"}
    )
    variant(
        "text mention after emoji",
        group,
        text="👋🏽 opsdroid, help",
        entities=[
            {
                "type": "text_mention",
                "offset": 5,
                "length": 8,
                "user": {"id": ME.id, "is_bot": True, "first_name": "opsdroid"},
            }
        ],
    )
    variant("location", base, text=None, location={"latitude": 1.5, "longitude": 2.5})
    edited = copy.deepcopy(base)
    edited["edited_message"] = edited.pop("message")
    out["edited message"] = edited
    return out


@pytest.mark.parametrize(("name", "update"), list(variants().items()), ids=list(variants()))
def test_both_readers_agree_on_payloads_ptb_takes(name: str, update: dict[str, Any]) -> None:
    typed = facts_from_ptb(update)
    assert typed == facts_from_json(update)
    if typed is not None:
        assert typed.attachments or typed.entities or typed.text or typed.content
