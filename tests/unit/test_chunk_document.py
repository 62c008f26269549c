"""Chunking: structure, markup stripping, token budgets, and boundaries that survive edits."""

from __future__ import annotations

import itertools
import random

import pytest

from streams.pipeline.chunk_document import approximate_tokens, chunk_text
from streams.records import ChunkText

WORDS = (
    "network client server install configure restart token access policy user group page ticket "
    "search index update delete version commit stream kafka cluster replica shard query vector "
    "embedding document section heading paragraph sentence release upgrade rollback backup"
).split()


def changed_texts(old: list[ChunkText], new: list[ChunkText]) -> tuple[int, int]:
    """(new texts not in old, old texts not in new): the re-embedding cost of an edit, by hash."""
    old_hashes = {chunk.text_hash for chunk in old}
    new_hashes = {chunk.text_hash for chunk in new}
    return len(new_hashes - old_hashes), len(old_hashes - new_hashes)


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def paragraph(rng: random.Random, words: int) -> str:
    sentences, left = [], words
    while left > 0:
        take = min(left, rng.randint(6, 14))
        sentences.append(sentence(rng, take))
        left -= take
    return " ".join(sentences)


def wiki_page(paragraphs: list[str]) -> str:
    """Sections of four paragraphs, with a short lead-in line and a list now and then."""
    out: list[str] = []
    for i, text in enumerate(paragraphs):
        if i % 4 == 0:
            out.append(f"== Section {i // 4} ==" if i % 8 == 0 else f"=== Part {i // 4} ===")
        out.append(text)
    return "\n\n".join(out)


def page_paragraphs(seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    paragraphs = [paragraph(rng, rng.randint(40, 110)) for _ in range(46)]
    for at in (5, 17, 30):  # short lead-ins that merge into the paragraph after them
        paragraphs.insert(at, "Steps:")
    paragraphs.insert(40, "* first step\n* second step\n* third step")
    return paragraphs


def test_the_edit_test_page_has_about_fifty_chunks() -> None:
    chunks = chunk_text(wiki_page(page_paragraphs()), "wikitext")
    assert 45 <= len(chunks) <= 55
    assert [c.number for c in chunks] == list(range(len(chunks)))


@pytest.mark.parametrize("edit", ["same_length", "longer", "shorter", "to_a_line"])
def test_editing_one_paragraph_changes_at_most_two_chunk_texts(edit: str) -> None:
    rng = random.Random(edit)
    original = page_paragraphs()
    before = chunk_text(wiki_page(original), "wikitext")
    for k, text in enumerate(original):
        words = text.split()
        edited = {
            "same_length": " ".join(rng.choice(WORDS) if i % 5 == 0 else w for i, w in enumerate(words)),
            "longer": text + " " + paragraph(rng, 30),
            "shorter": " ".join(words[: len(words) // 2]),
            "to_a_line": " ".join(words[:3]),
        }[edit]
        after = chunk_text(wiki_page([*original[:k], edited, *original[k + 1 :]]), "wikitext")
        added, removed = changed_texts(before, after)
        assert added <= 2 and removed <= 2, f"editing paragraph {k} ({edit}) changed {added}/{removed}"


def test_editing_an_oversized_paragraph_changes_only_its_pieces() -> None:
    rng = random.Random(3)
    paragraphs = [paragraph(rng, 60) for _ in range(10)]
    paragraphs[4] = paragraph(rng, 600)
    before = chunk_text("\n\n".join(paragraphs), "plain")
    paragraphs[4] = paragraphs[4].replace(".", "!", 1)
    after = chunk_text("\n\n".join(paragraphs), "plain")
    pieces = [c for c in before if c.text_hash not in {a.text_hash for a in after}]
    assert pieces and all(p.number in range(4, 4 + len(before) - 9) for p in pieces)


@pytest.mark.parametrize("words", [4, 12, 30, 60])
def test_editing_the_lead_in_of_a_long_table_leaves_the_table_s_pieces(words: int) -> None:
    """A short paragraph and a table caption before a table of 600 words (one oversized paragraph, as
    the wiki's manual pages have): growing the paragraph past the short line makes it end its own chunk
    and leaves the caption as the table's only lead-in. The table's pieces must stay as they were."""
    rng = random.Random(words)
    opening, intro, caption = paragraph(rng, 60), paragraph(rng, 12), "'''Table 28.3. Statistics views'''"
    table = "\n".join(f"* {sentence(rng, 12)}" for _ in range(50))
    before = chunk_text(wiki_page([opening, intro, caption, table]), "wikitext")
    after = chunk_text(wiki_page([opening, f"{intro} {paragraph(rng, words)}", caption, table]), "wikitext")
    added, removed = changed_texts(before, after)
    assert len(before) >= 5
    assert added <= 2 and removed <= 2, f"a {words}-word addition to the lead-in changed {added}/{removed}"


def test_wikitext_sections_are_heading_paths_and_prefix_the_text() -> None:
    text = "Intro.\n\n== Install ==\nGet it.\n\n=== Linux ===\nRun it.\n\n== Use ==\nSearch."
    chunks = chunk_text(text, "wikitext")
    assert [c.section for c in chunks] == ["", "Install", "Install > Linux", "Use"]
    assert chunks[2].text == "Install > Linux\nRun it."
    assert chunks[0].text == "Intro."


def test_wikitext_markup_is_stripped() -> None:
    text = (
        "{{Infobox software\n| name = VPN\n| os = {{flatlist|Linux|macOS}}\n}}\n"
        "The '''VPN''' client<ref name=a>Vendor docs.</ref> connects to [[Network|the network]] "
        "and [[Kafka]]; see [https://example.com the site].<!-- hidden -->[[File:Logo.png|thumb|Logo]]\n"
        "* first item\n# second item\n[[Category:Networking]]"
    )
    (chunk,) = chunk_text(text, "wikitext")
    assert chunk.text == (
        "The VPN client connects to the network and Kafka; see the site.\n- first item\n- second item"
    )


def test_wikitext_tables_keep_their_cells() -> None:
    text = '{| class="wikitable"\n! OS !! Client\n|-\n| Linux || openvpn\n|-\n| style="x" | macOS || Tunnelblick\n|}'
    (chunk,) = chunk_text(text, "wikitext")
    assert chunk.text.splitlines() == ["OS | Client", "Linux | openvpn", "macOS | Tunnelblick"]


def test_html_headings_paragraphs_and_dropped_scripts() -> None:
    html = (
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        "<h1>Guide</h1><p>Welcome &amp; hello.</p><script>alert('x')</script>"
        "<h2>Install</h2><ul><li>Download</li><li>Run the <b>installer</b></li></ul>"
        "<pre>make  install\n  done</pre><table><tr><td>cell one</td></tr></table></body></html>"
    )
    chunks = chunk_text(html, "html", max_tokens=256)
    assert chunks[0].text == "Guide\nWelcome & hello."
    assert {c.section for c in chunks[1:]} == {"Guide > Install"}
    bodies = [c.text.removeprefix("Guide > Install\n") for c in chunks[1:]]
    assert "\n\n".join(bodies) == "Download\n\nRun the installer\n\nmake  install\n  done\n\ncell one"
    assert "alert" not in " ".join(c.text for c in chunks) and "color" not in chunks[0].text


def test_plain_text_paragraphs_and_empty_text() -> None:
    assert chunk_text("", "plain") == [] and chunk_text(" \n\n ", "wikitext") == []
    long_paragraphs = "\n\n".join(paragraph(random.Random(i), 50) for i in range(3))
    chunks = chunk_text(long_paragraphs, "plain")
    assert len(chunks) == 3 and all(c.section == "" for c in chunks)


def test_short_paragraphs_merge_forward_into_the_next() -> None:
    rng = random.Random(1)
    body = paragraph(rng, 60)
    chunks = chunk_text(f"Steps:\n\n{body}", "plain")
    assert [c.text for c in chunks] == [f"Steps:\n\n{body}"]


def test_oversized_paragraph_splits_within_budget_with_overlap() -> None:
    text = paragraph(random.Random(5), 500)
    chunks = chunk_text(text, "plain", max_tokens=100, overlap_tokens=16)
    assert len(chunks) >= 5
    assert all(approximate_tokens(c.text) <= 100 for c in chunks)
    for first, second in itertools.pairwise(chunks):
        assert second.text.split()[0] in first.text.split()[-16:]  # the next piece opens with a tail


def test_a_sentence_longer_than_the_budget_splits_on_words() -> None:
    text = " ".join(["word"] * 300)
    chunks = chunk_text(text, "plain", max_tokens=64, overlap_tokens=8, count_tokens=lambda s: len(s.split()))
    assert all(len(c.text.split()) <= 64 for c in chunks)
    assert sum(len(c.text.split()) for c in chunks) >= 300


def test_heading_prefix_spends_budget() -> None:
    text = "== " + " ".join(["Heading"] * 10) + " ==\n\n" + " ".join(["w"] * 100)
    chunks = chunk_text(text, "wikitext", max_tokens=64, overlap_tokens=0, count_tokens=lambda s: len(s.split()))
    assert all(len(c.text.split()) <= 64 for c in chunks)


def test_chunking_is_deterministic() -> None:
    text = wiki_page(page_paragraphs(11))
    assert chunk_text(text, "wikitext") == chunk_text(text, "wikitext")


def test_approximate_tokens_errs_high_on_prose() -> None:
    assert approximate_tokens("The quick brown fox jumps over the lazy dog.") == 13  # MiniLM: 10
    assert approximate_tokens("") == 0 and approximate_tokens("internationalization") == 5


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        chunk_text("x", "plain", max_tokens=0)
    with pytest.raises(ValueError):
        chunk_text("x", "plain", overlap_tokens=-1)


def test_chunks_are_chunk_texts() -> None:
    (chunk,) = chunk_text("Hello.", "plain")
    assert chunk == ChunkText(number=0, text="Hello.", section="")


def test_editing_one_item_of_a_long_html_list_stays_local() -> None:
    """150 short <li> items: content-defined anchors cut the run; an edit moves at most the
    boundary after the edited item (3 texts only where a budget cut moves, well under 2% here)."""
    rng = random.Random(0)
    items = [sentence(rng, rng.randint(3, 12)) for _ in range(150)]

    def html(values: list[str]) -> str:
        return "<h2>List</h2><ul>" + "".join(f"<li>{v}</li>" for v in values) + "</ul>"

    before = chunk_text(html(items), "html")
    costs = [
        max(changed_texts(before, chunk_text(html([*items[:k], sentence(rng, 8), *items[k + 1 :]]), "html")))
        for k in range(len(items))
    ]
    assert len(before) > 20 and max(costs) <= 3 and sum(cost > 2 for cost in costs) <= 3
