"""The forget verification reads its one _msearch correctly: a mention in any probe's results (phrase,
kNN, or the hybrid search's fused results) makes it fail, a clean index passes, and a failed probe
is an error, never a zero."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.errors import IndexingError
from streams.forget.expand import Identity, mention_patterns
from streams.forget.verify import verify_forgotten
from streams.pipeline.mentions import Redactor, pattern_hashes

KEY = b"k" * 32
EMAIL = "tom.planted@example.com"
PATTERNS = mention_patterns({f"email:{EMAIL}"}, [["name", "Tom Planted"]])
REDACTOR = Redactor(KEY, pattern_hashes(KEY, PATTERNS))


def _hit(chunk_id: str, text: str) -> dict[str, Any]:
    return {
        "_id": chunk_id,
        "_source": {
            "document_id": chunk_id.split("#")[0],
            "source": "tickets",
            "text": text,
            "title": "t",
            "section": "",
        },
    }


class FakeIndices:
    def __init__(self) -> None:
        self.refreshed = 0

    async def refresh(self, index: str) -> None:
        self.refreshed += 1


class FakeElasticsearch:
    """Answers each probe of the msearch by its kind (count, knn, bm25) with canned hits."""

    def __init__(
        self,
        *,
        phrase: list[dict[str, Any]] = (),
        knn: list[dict[str, Any]] = (),  # type: ignore[assignment]
        hybrid: list[dict[str, Any]] = (),
        fail: bool = False,
    ) -> None:  # type: ignore[assignment]
        self.indices = FakeIndices()
        self.phrase, self.knn, self.hybrid, self.fail = list(phrase), list(knn), list(hybrid), fail
        self.calls = 0
        self.searches: list[dict[str, Any]] = []

    async def msearch(self, searches: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        bodies = searches[1::2]
        self.searches = bodies
        responses: list[dict[str, Any]] = []
        for body in bodies:
            if "track_total_hits" in body:
                responses.append({"hits": {"total": {"value": 0}, "hits": []}})
            elif "knn" in body:
                hits = self.knn if body["size"] == 100 else self.hybrid  # the probe's kNN or the hybrid's
                responses.append({"hits": {"hits": hits}})
            elif "highlight" in body:
                responses.append({"hits": {"hits": self.phrase}})
            else:
                responses.append({"error": {"type": "boom"}} if self.fail else {"hits": {"hits": self.hybrid}})
        return {"responses": responses}


async def _no_embedding(texts: list[str]) -> list[list[float]]:
    raise AssertionError("the vectors were given: nothing to embed")


def _verify(client: FakeElasticsearch) -> Any:
    vectors = [[0.1] * 4 for _ in PATTERNS]
    return asyncio.run(
        verify_forgotten(
            client,
            "streams-chunks",
            Identity({f"email:{EMAIL}"}, PATTERNS),  # type: ignore[arg-type]
            REDACTOR,
            _no_embedding,
            vectors,
        )
    )


def test_a_clean_index_passes_with_one_refresh_and_one_msearch() -> None:
    client = FakeElasticsearch(
        phrase=[_hit("a#root#0", "Please keep [redacted] in copy.")], knn=[_hit("b#root#0", "Nothing about anyone.")]
    )
    verification = _verify(client)
    assert verification.clean
    assert (client.indices.refreshed, client.calls) == (1, 1)
    assert len(client.searches) == 1 + 4 * len(PATTERNS)  # the count, then four probes per pattern


@pytest.mark.parametrize("probe", ["phrase", "knn", "hybrid"])
def test_a_mention_in_any_probe_fails_the_verification(probe: str) -> None:
    leak = [_hit("c#root#0", f"Please keep Tom Planted ({EMAIL}) in copy.")]
    verification = _verify(FakeElasticsearch(**{probe: leak}))
    assert not verification.clean
    figures = {"phrase": verification.bm25_hits, "knn": verification.knn_hits, "hybrid": verification.hybrid_hits}
    assert figures[probe] == 1


def test_a_failed_probe_is_an_error_not_a_zero() -> None:
    with pytest.raises(IndexingError, match="verification searches failed"):
        _verify(FakeElasticsearch(fail=True))
