"""Hostile input, case by case, over the pure stages (decode, mapping, chunking, dead letters).

Each case must end either indexed correctly or refused with a clear reason (a StreamsError that
becomes a dead letter); never a crash, never a silent truncation. The envelopes are derived from
real captured Debezium events (tests/unit/fixtures/debezium)."""

from __future__ import annotations

import copy
import json
import random
import re
import string
from pathlib import Path
from typing import Any

import pytest

from streams.errors import DecodeError, MappingError
from streams.observability.dead_letters import MAX_VALUE_BYTES, dead_letter_record
from streams.pipeline.chunk_document import MAX_WORD_CHARS, approximate_tokens, chunk_text
from streams.pipeline.decode_change_event import decode_change_event
from streams.pipeline.document_mapping import Mappings, load_mappings
from streams.records import Op, Origin, PartChange

ROOT = Path(__file__).resolve().parents[2]
CAPTURED = Path(__file__).parent / "fixtures" / "debezium"
TICKETS = "tickets.public.tickets"
COMMENTS = "tickets.public.ticket_comments"


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return load_mappings(ROOT / "connectors")


def captured(name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    fixture = json.loads((CAPTURED / f"{name}.json").read_text())
    return fixture["topic"], fixture["key"], copy.deepcopy(fixture["value"])


def decode(topic: str, key: Any, value: Any, **kw: Any) -> Any:
    raw_key = key if isinstance(key, bytes) or key is None else json.dumps(key).encode()
    raw_value = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
    return decode_change_event(topic, raw_key, raw_value, **kw)


def refused(topic: str, key: Any, value: Any, **kw: Any) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(topic, key, value, **kw)
    return caught.value.reason


def with_description(description: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    topic, key, value = captured(f"{TICKETS}/update")
    value["after"]["description"] = description
    return topic, key, value


def part_of(mappings: Mappings, topic: str, key: Any, value: Any) -> PartChange:
    event = decode(topic, key, value)
    assert event is not None
    change = mappings.part_change(event)
    assert change is not None
    return change


# -- refused at decode, each with its reason -------------------------------------------------------


def test_malformed_json() -> None:
    assert "value is not JSON" in refused(TICKETS, {"id": 1}, b'{"op": "c", "after": {"id": 1')


@pytest.mark.parametrize("value", [{"hello": "world"}, [1, 2], "a string", 42])
def test_json_that_is_not_a_debezium_envelope(value: Any) -> None:
    assert "not a Debezium envelope" in refused(TICKETS, {"id": 1}, value)


def test_an_unknown_table_on_a_mapped_topic() -> None:
    topic, key, value = captured(f"{TICKETS}/update")
    value["source"]["table"] = "payroll"
    reason = refused(topic, key, value)
    assert "'payroll'" in reason and TICKETS in reason


def test_a_missing_primary_key() -> None:
    topic, _, value = captured(f"{TICKETS}/update")
    assert "missing a primary key" in refused(topic, None, value)
    assert "key is not a non-empty object" in refused(topic, {}, value)


def test_invalid_utf8() -> None:
    topic, key, value = captured(f"{TICKETS}/update")
    raw = json.dumps(value).encode().replace(b"Smoke", b"Sm\xff\xfeke")
    assert "not valid UTF-8" in refused(topic, key, raw)


def test_text_with_a_lone_surrogate() -> None:
    topic, key, value = captured(f"{TICKETS}/update")
    raw = json.dumps(value).replace("Smoke", "Sm\\ud800oke").encode()
    assert "not Unicode" in refused(topic, key, raw)


def test_a_10_mb_body_is_refused_by_the_size_guard() -> None:
    topic, key, value = with_description("x" * (10 * 1024 * 1024))
    reason = refused(topic, key, value)
    assert "over the 4,194,304-byte limit" in reason and "STREAMS_MAX_EVENT_BYTES" in reason
    # The guard is a setting: a deployment that wants big rows raises it.
    assert decode(topic, key, value, max_bytes=16 * 1024 * 1024) is not None


def test_the_dead_letter_of_a_huge_event_fits_a_kafka_message() -> None:
    topic, _key, value = with_description("x" * (10 * 1024 * 1024))
    raw = json.dumps(value).encode()
    with pytest.raises(DecodeError) as caught:
        decode_change_event(topic, b"{}", raw)
    record = dead_letter_record(Origin(topic, 0, 7), b"{}", raw, caught.value)
    assert len(record["value"]) == MAX_VALUE_BYTES and record["value"] == raw[:MAX_VALUE_BYTES]
    assert record["stage"] == "decode" and "value truncated: 10,48" in record["error"]


# -- indexed correctly -----------------------------------------------------------------------------


def wordpiece_like(text: str) -> int:
    """Counts like the model's WordPiece tokenizer where it matters here: one token per CJK ideograph,
    and a word over 100 characters is a single [UNK] (the trap: counting alone would not see it)."""
    total = 0
    for word in text.split():
        total += 1 if len(word) > MAX_WORD_CHARS else approximate_tokens(word)
    return total


@pytest.mark.parametrize("count", [approximate_tokens, wordpiece_like], ids=["approximate", "wordpiece"])
def test_a_100000_character_token_is_split_into_window_sized_chunks(count: Any) -> None:
    token = "".join(random.Random(9).choices(string.ascii_lowercase, k=100_000))
    chunks = chunk_text(f"Before. {token} After.", "plain", max_tokens=256, overlap_tokens=32, count_tokens=count)
    assert len(chunks) > 10
    for chunk in chunks:
        assert count(chunk.text) <= 256
        assert max(len(word) for word in chunk.text.split()) <= MAX_WORD_CHARS
    # Nothing is lost: the token's consecutive pieces, in order, once each (overlap repeats are dropped).
    pieces = list(dict.fromkeys(w for c in chunks for w in c.text.split() if w not in ("Before.", "After.")))
    assert "".join(pieces) == token


def test_18000_characters_of_cjk_without_spaces_are_split_by_token_count() -> None:
    text = "".join(chr(0x4E00 + (i * 31) % 20000) for i in range(18_000))
    chunks = chunk_text(text, "plain", max_tokens=256, overlap_tokens=32)
    assert len(chunks) >= 18_000 // 256
    assert all(approximate_tokens(chunk.text) <= 256 for chunk in chunks)
    assert approximate_tokens(text) == 18_000  # one token per ideograph, as BERT's tokenizer counts


def test_cjk_sentences_end_at_cjk_punctuation() -> None:
    sentence = "数据库复制需要一个主服务器和多个备用服务器。" * 40
    chunks = chunk_text(sentence, "plain", max_tokens=64, overlap_tokens=8)
    assert len(chunks) > 1 and all(approximate_tokens(c.text) <= 64 for c in chunks)
    assert chunks[0].text.endswith("。")


def test_emoji_and_right_to_left_text_survive_every_stage(mappings: Mappings) -> None:
    body = "Printer 🖨️🔥 on fire 👩🏽‍💻. الطابعة لا تعمل منذ الصباح. המדפסת לא עובדת."
    topic, key, value = with_description(body)
    change = part_of(mappings, topic, key, value)
    assert change.text == body and change.content_hash
    chunks = chunk_text(change.text, change.text_format)
    assert [c.text for c in chunks] == [body]


def test_script_and_style_are_never_indexed_from_html() -> None:
    html = (
        "<h1>Runbook</h1><p>Restart the <b>queue</b> first.</p>"
        "<script>stealCookies('zqscript')</script><style>.x{content:'zqstyle'}</style>"
        '<p onclick="zqattr()">Then check the logs.</p><noscript>zqnoscript</noscript>'
        "<SCRIPT type='text/javascript'>zqupper()</SCRIPT><p>Done.</p><script>zqunclosed("
    )
    text = " ".join(c.text for c in chunk_text(html, "html"))
    assert "Restart the queue first." in text and "Then check the logs." in text and "Done." in text
    assert not re.search(r"zq\w+", text), text


def test_script_and_style_are_never_indexed_from_wikitext() -> None:
    wikitext = "Intro text.\n\n<script>zqscript()</script>\n\nMore <style>p{zqstyle:1}</style> text."
    text = " ".join(c.text for c in chunk_text(wikitext, "wikitext"))
    assert "Intro text." in text and "More text." in text.replace("  ", " ")
    assert "zq" not in text


# -- schema changes mid-stream -----------------------------------------------------------------------


def test_a_column_added_mid_stream_is_ignored(mappings: Mappings) -> None:
    topic, key, value = captured(f"{TICKETS}/update")
    before = part_of(mappings, topic, key, value)
    value["after"]["sla_minutes"] = 90
    after = part_of(mappings, topic, key, value)
    assert after.content_hash == before.content_hash and after.text == before.text


@pytest.mark.parametrize("change", ["dropped", "renamed"])
def test_a_mapped_column_dropped_or_renamed_is_a_clear_mapping_error(mappings: Mappings, change: str) -> None:
    topic, key, value = captured(f"{COMMENTS}/update")
    body = value["after"].pop("body")
    if change == "renamed":
        value["after"]["body_text"] = body
    event = decode(topic, key, value)
    with pytest.raises(MappingError) as caught:
        mappings.part_change(event)
    reason = caught.value.reason
    assert "lacks mapped column(s) body" in reason and "comments.mapping.yaml" not in reason
    assert "tickets.mapping.yaml" in reason and "dropped or renamed" in reason


def test_a_delete_survives_a_dropped_column(mappings: Mappings) -> None:
    topic, key, value = captured(f"{COMMENTS}/delete")
    value["before"].pop("body")
    event = decode(topic, key, value)
    assert event.op is Op.DELETE
    change = mappings.part_change(event)
    assert change is not None and change.deleted
