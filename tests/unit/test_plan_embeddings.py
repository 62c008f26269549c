"""plan_embeddings: only new texts reach the model; moved and repeated texts reuse vectors."""

from __future__ import annotations

import pytest

from streams.errors import EmbeddingError
from streams.pipeline.chunk_document import chunk_text
from streams.pipeline.plan_embeddings import plan_embeddings
from streams.records import ChunkText, text_hash


def chunks(*texts: str) -> list[ChunkText]:
    return [ChunkText(number=i, text=t) for i, t in enumerate(texts)]


def test_first_indexing_embeds_everything() -> None:
    plan = plan_embeddings(chunks("a", "b"), {})
    assert (plan.embedded, plan.reused_count, plan.texts) == (2, 0, ["a", "b"])


def test_unchanged_chunks_reuse_their_vectors_even_when_they_move() -> None:
    existing = {text_hash("a"): [1.0], text_hash("b"): [2.0]}
    plan = plan_embeddings(chunks("new", "a", "b"), existing)
    assert (plan.embedded, plan.reused_count, plan.texts) == (1, 2, ["new"])
    assert plan.vectors([[9.0]]) == [[9.0], [1.0], [2.0]]


def test_identical_texts_are_embedded_once() -> None:
    plan = plan_embeddings(chunks("same", "other", "same"), {})
    assert plan.texts == ["same", "other"]
    assert plan.vectors([[1.0], [2.0]]) == [[1.0], [2.0], [1.0]]


def test_metadata_only_change_embeds_nothing() -> None:
    text = "== Install ==\nRun the installer.\n\nThen restart."
    before = chunk_text(text, "wikitext")
    existing = {c.text_hash: [float(c.number)] for c in before}
    plan = plan_embeddings(chunk_text(text, "wikitext"), existing)
    assert plan.embedded == 0 and plan.reused_count == len(before) and plan.vectors([]) == [[0.0]]


def test_empty_part_plans_nothing() -> None:
    plan = plan_embeddings([], {text_hash("a"): [1.0]})
    assert (plan.embedded, plan.reused_count, plan.vectors([])) == (0, 0, [])


def test_wrong_number_of_vectors_is_an_embedding_error() -> None:
    plan = plan_embeddings(chunks("a", "b"), {})
    with pytest.raises(EmbeddingError, match="asked for 2 vectors, got 1") as caught:
        plan.vectors([[1.0]])
    assert caught.value.stage == "embed"
