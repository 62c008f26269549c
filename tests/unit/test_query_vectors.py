"""Search queries are embedded by a model and a thread of their own, and repeated queries come from a cache."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from streams.embedding.embedder import Embedder
from streams.errors import EmbeddingError
from streams.settings import Settings

MODEL = "all-MiniLM-L6-v2"


class CountingModel:
    """A stand-in for a loaded model: counts its calls, and can hold one until released."""

    tokenizer = None
    max_seq_length = 8
    dimensions = 3

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.calls: list[list[str]] = []
        self.hold = hold
        self.entered = threading.Event()

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        self.calls.append(list(texts))
        self.entered.set()
        if self.hold is not None and not self.hold.wait(10):
            raise TimeoutError("never released")
        return np.array([[float(len(t)), 0.0, 1.0] for t in texts], dtype=np.float32)


def embedder_with(index_model: CountingModel, query_model: CountingModel, cache: int = 4) -> Embedder:
    embedder = Embedder(MODEL, backend="onnx-int8", query_cache_size=cache)
    embedder._model = index_model  # type: ignore[assignment]
    embedder._query_model = query_model  # type: ignore[assignment]
    return embedder


async def test_a_query_does_not_wait_behind_an_indexing_batch() -> None:
    release = threading.Event()
    indexing = CountingModel(hold=release)
    embedder = embedder_with(indexing, CountingModel())
    batch = asyncio.ensure_future(embedder.encode_async(["a long page"] * 64))
    assert await asyncio.to_thread(indexing.entered.wait, 10), "the batch never reached the indexing model"

    vector = await asyncio.wait_for(embedder.encode_query_async("deadlock"), timeout=5)

    assert vector == [8.0, 0.0, 1.0]
    assert not batch.done()
    release.set()
    assert len(await batch) == 64


async def test_a_repeated_query_comes_from_the_cache_and_the_oldest_is_evicted() -> None:
    queries = CountingModel()
    embedder = embedder_with(CountingModel(), queries, cache=2)

    first = await embedder.encode_query_async("vacuum")
    again = await embedder.encode_query_async("vacuum")
    await embedder.encode_query_async("wal")
    await embedder.encode_query_async("fsync")  # evicts "vacuum", the least recently used
    await embedder.encode_query_async("vacuum")

    assert first == again
    assert queries.calls == [["vacuum"], ["wal"], ["fsync"], ["vacuum"]]


async def test_a_zero_size_cache_encodes_every_query() -> None:
    queries = CountingModel()
    embedder = embedder_with(CountingModel(), queries, cache=0)

    await embedder.encode_query_async("vacuum")
    await embedder.encode_query_async("vacuum")

    assert queries.calls == [["vacuum"], ["vacuum"]]


async def test_a_failing_query_model_raises_an_embedding_error_and_caches_nothing() -> None:
    class Broken(CountingModel):
        def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
            raise RuntimeError("session lost")

    embedder = embedder_with(CountingModel(), Broken())
    with pytest.raises(EmbeddingError, match="session lost"):
        await embedder.encode_query_async("vacuum")
    assert len(embedder._query_vectors) == 0


def test_the_query_model_gives_the_indexing_models_vector() -> None:
    # Float32 ONNX: the query model is a second session over the same file, with one thread.
    embedder = Embedder(MODEL, backend="onnx", cache_dir=Settings().cache_dir)
    query = "how to recover from a deadlock"

    by_query_model = np.asarray(embedder.encode_query(query))
    by_index_model = np.asarray(embedder.encode([query])[0])

    assert embedder.query_model is not embedder.model
    assert np.allclose(by_query_model, by_index_model, atol=1e-5)
