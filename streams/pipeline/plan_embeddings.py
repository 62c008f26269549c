"""Decide which chunks need the model and which keep a vector the index already holds.

Embedding is the expensive step, so a chunk is embedded only when its text is new: vectors are
looked up by text hash, not by chunk number, so a chunk that merely moved (a paragraph inserted
above it) keeps its vector. Identical texts within one part are embedded once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streams.errors import EmbeddingError
from streams.records import ChunkText

Vector = list[float]


@dataclass(frozen=True)
class EmbeddingPlan:
    chunks: tuple[ChunkText, ...]
    to_embed: tuple[ChunkText, ...]  # one chunk per new text hash, in chunk order: the model's batch
    reused: Mapping[str, Vector]  # text hash -> vector already in the index

    @property
    def embedded(self) -> int:
        """How many texts go to the model."""
        return len(self.to_embed)

    @property
    def reused_count(self) -> int:
        """How many chunks keep a vector from the index."""
        return sum(chunk.text_hash in self.reused for chunk in self.chunks)

    @property
    def texts(self) -> list[str]:
        return [chunk.text for chunk in self.to_embed]

    def vectors(self, embedded: Sequence[Vector]) -> list[Vector]:
        """One vector per chunk, in chunk order, given the model's vectors for ``to_embed``."""
        if len(embedded) != len(self.to_embed):
            raise EmbeddingError(f"asked for {len(self.to_embed)} vectors, got {len(embedded)}")
        by_hash = dict(self.reused)
        by_hash.update((chunk.text_hash, vector) for chunk, vector in zip(self.to_embed, embedded, strict=True))
        return [by_hash[chunk.text_hash] for chunk in self.chunks]


def plan_embeddings(new_chunks: Sequence[ChunkText], existing: Mapping[str, Vector]) -> EmbeddingPlan:
    """``existing`` maps text hash -> vector already indexed for this part (or document)."""
    reused: dict[str, Vector] = {}
    to_embed: dict[str, ChunkText] = {}
    for chunk in new_chunks:
        digest = chunk.text_hash
        if digest in existing:
            reused[digest] = existing[digest]
        elif digest not in to_embed:
            to_embed[digest] = chunk
    return EmbeddingPlan(chunks=tuple(new_chunks), to_embed=tuple(to_embed.values()), reused=reused)
