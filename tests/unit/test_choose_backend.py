"""STREAMS_EMBEDDING_BACKEND=auto: which backend it picks for which machine, that a candidate whose
vectors disagree with torch float32 is rejected, and that the choice is cached per machine and model.

The machine (CPU flags, GPU) and the models are small fakes: a fake model's vectors are the
reference's plus noise of a chosen size, and its encode advances a fake clock by a chosen time per
text, so these tests say what is chosen without loading a model or timing anything. One test at the
end runs the real check on the bundled model."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from streams.embedding import choose_backend
from streams.embedding.choose_backend import (
    AGREEMENT_BARS,
    Machine,
    agreement_sample,
    candidates,
    choose,
    min_cosine,
    select,
)
from streams.errors import EmbeddingError

MODEL = "all-MiniLM-L6-v2"
TEXTS = [f"chunk number {n} of the sample" for n in range(12)]

# The three kinds of CPU CI runs on, and a machine with a GPU.
XEON_AMX = Machine(
    "Intel(R) Xeon(R) Platinum 8480+",
    frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}),
)
EPYC_VNNI = Machine("AMD EPYC 7B13 (VNNI, no BF16)", frozenset({"avx2", "avx512f", "avx512vnni"}))
ALDER_AVX_VNNI = Machine("12th Gen Intel(R) Core(TM) i7-12700", frozenset({"avx2", "avx_vnni"}))
EPYC_AVX2 = Machine("AMD EPYC 7452", frozenset({"avx2", "fma"}))
WITH_GPU = Machine("AMD EPYC", frozenset({"avx2"}), gpu="NVIDIA H200")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reference_vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
    vector = np.random.default_rng(seed).normal(size=16)
    return vector / np.linalg.norm(vector)


class FakeModel:
    """The reference's vectors plus `noise`, taking `seconds_per_text` of the fake clock."""

    tokenizer: Any = None
    max_seq_length = 256
    dimensions = 16

    def __init__(self, clock: Clock, seconds_per_text: float, noise: float = 0.0) -> None:
        self.clock, self.seconds_per_text, self.noise = clock, seconds_per_text, noise

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        self.clock.now += self.seconds_per_text * len(texts)
        vectors = np.stack([reference_vector(text) for text in texts])
        if self.noise:
            vectors = vectors + np.random.default_rng(len(texts)).normal(scale=self.noise, size=vectors.shape)
        return vectors


class FakeLoader:
    """load(backend, device): a FakeModel per backend, as fast and as exact as the test says; a backend
    given an exception fails to load with it. Records every load."""

    def __init__(self, clock: Clock, **backends: Any) -> None:
        self.clock = clock
        # Defaults: torch 1 s a text; every other backend exact and twice as fast.
        self.backends: dict[str, Any] = {"torch": (1.0, 0.0), **{k.replace("_", "-"): v for k, v in backends.items()}}
        self.loaded: list[tuple[str, str]] = []

    def __call__(self, backend: str, device: str) -> FakeModel:
        self.loaded.append((backend, device))
        spec = self.backends.get(backend, (0.5, 0.0))
        if isinstance(spec, Exception):
            raise spec
        seconds, noise = spec
        return FakeModel(self.clock, seconds, noise)


def _select(machine: Machine, **backends: Any) -> tuple[choose_backend.Choice, FakeLoader]:
    clock = Clock()
    loader = FakeLoader(clock, **backends)
    return select(loader, machine, TEXTS, clock=clock), loader


@pytest.mark.parametrize(
    ("machine", "order"),
    [
        (XEON_AMX, ["torch-bf16", "onnx-int8", "onnx", "torch"]),
        (EPYC_VNNI, ["onnx-int8", "onnx", "torch"]),
        (ALDER_AVX_VNNI, ["onnx-int8", "onnx", "torch"]),
        (EPYC_AVX2, ["onnx", "torch"]),
        (WITH_GPU, ["torch-fp16", "onnx", "torch"]),
    ],
)
def test_candidates_follow_the_cpu_features(machine: Machine, order: list[str]) -> None:
    found = candidates(machine)
    assert [c.backend for c in found] == order
    assert [c.device for c in found] == ["cuda" if b == "torch-fp16" else "cpu" for b in order]


@pytest.mark.parametrize(
    ("machine", "expected", "device"),
    [
        (XEON_AMX, "torch-bf16", "cpu"),
        (EPYC_VNNI, "onnx-int8", "cpu"),
        (ALDER_AVX_VNNI, "onnx-int8", "cpu"),
        (EPYC_AVX2, "onnx", "cpu"),
        (WITH_GPU, "torch-fp16", "cuda"),
    ],
)
def test_the_first_candidate_that_agrees_and_is_faster_is_chosen(machine: Machine, expected: str, device: str) -> None:
    choice, loader = _select(machine)

    assert (choice.backend, choice.device) == (expected, device)
    assert choice.rejected == ()
    assert choice.chunks_per_s == 2.0 and choice.reference_chunks_per_s == 1.0
    assert choice.min_cosine == pytest.approx(1.0)
    assert "min cosine 1.00000" in choice.reason
    # The reference first, then only the winner: nothing past the first that agreed is loaded.
    assert loader.loaded == [("torch", "cpu"), (expected, device)]


def test_a_gpu_candidate_runs_on_the_configured_cuda_device() -> None:
    clock = Clock()
    choice = select(FakeLoader(clock), WITH_GPU, TEXTS, gpu_device="cuda:1", clock=clock)
    assert (choice.backend, choice.device) == ("torch-fp16", "cuda:1")


def test_without_bf16_or_vnni_the_faster_of_onnx_and_torch_wins() -> None:
    faster, _ = _select(EPYC_AVX2, onnx=(0.8, 0.0))
    assert faster.backend == "onnx"

    slower, _ = _select(EPYC_AVX2, onnx=(1.2, 0.0))
    assert slower.backend == "torch"
    assert slower.min_cosine == 1.0 and slower.chunks_per_s == 1.0
    assert slower.rejected and "onnx: not faster than torch float32" in slower.rejected[0]


def test_a_candidate_that_disagrees_with_float32_is_rejected_and_the_next_is_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # bfloat16 gone wrong: fast, but its vectors drift (cosine about 0.99, under its 0.999 bar).
    caplog.set_level(logging.INFO, logger="streams.embedding.choose_backend")
    choice, loader = _select(XEON_AMX, torch_bf16=(0.25, 0.025))

    assert choice.backend == "onnx-int8"
    assert [b for b, _ in loader.loaded] == ["torch", "torch-bf16", "onnx-int8"]
    assert len(choice.rejected) == 1 and choice.rejected[0].startswith("torch-bf16: disagrees with torch float32")
    assert "(bar 0.999)" in choice.rejected[0]
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "torch-bf16 rejected" in warning.getMessage() and "min cosine 0.9" in warning.getMessage()


def test_each_backend_is_held_to_its_own_bar() -> None:
    # The same drift (cosine about 0.995) passes int8's bar (0.99) and fails the 16-bit one (0.999).
    assert AGREEMENT_BARS["onnx-int8"] < AGREEMENT_BARS["torch-bf16"] == AGREEMENT_BARS["torch-fp16"] == 0.999
    choice, _ = _select(XEON_AMX, torch_bf16=(0.25, 0.018), onnx_int8=(0.5, 0.018))
    assert choice.backend == "onnx-int8"
    assert choice.min_cosine is not None and 0.99 <= choice.min_cosine < 0.999


def test_a_candidate_that_does_not_load_is_rejected_and_the_next_is_used() -> None:
    choice, _ = _select(WITH_GPU, torch_fp16=EmbeddingError("CUDA out of memory"), onnx=EmbeddingError("no export"))
    assert choice.backend == "torch"
    assert [line.split(":")[0] for line in choice.rejected] == ["torch-fp16", "onnx"]
    assert "CUDA out of memory" in choice.rejected[0]


def test_min_cosine_catches_one_wrong_vector() -> None:
    vectors = np.stack([reference_vector(t) for t in TEXTS])
    assert min_cosine(vectors, vectors) == pytest.approx(1.0)
    one_off = vectors.copy()
    one_off[3] = vectors[4]
    assert min_cosine(one_off, vectors) < 0.9
    with pytest.raises(ValueError):
        min_cosine(vectors[:3], vectors)


# The cache


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    return folder


def _choose(loader: FakeLoader, model_dir: Path, cache_dir: Path, machine: Machine = XEON_AMX) -> choose_backend.Choice:
    return choose(
        loader, MODEL, model_dir, cache_dir, machine_reader=lambda: machine, sample=lambda: TEXTS, clock=loader.clock
    )


def test_the_choice_is_cached_and_a_later_start_measures_nothing(model_dir: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    first = _choose(FakeLoader(Clock()), model_dir, cache_dir)
    assert first.backend == "torch-bf16" and not first.cached

    files = list((cache_dir / "backends").glob("*.json"))
    assert [Path(first.cache_file)] == files
    written = json.loads(files[0].read_text())
    assert written["backend"] == "torch-bf16" and written["chunks_per_s"] == 2.0
    assert written["key"]["cpu"] == XEON_AMX.cpu and written["key"]["model"] == MODEL
    assert "amx_bf16" in written["key"]["features"] and written["key"]["versions"]["torch"]

    never = FakeLoader(Clock(), torch=AssertionError("a cached choice loads nothing to measure"))
    again = _choose(never, model_dir, cache_dir)
    assert again.cached and never.loaded == []
    assert (again.backend, again.device, again.reason, again.chunks_per_s) == (
        first.backend,
        first.device,
        first.reason,
        first.chunks_per_s,
    )


@pytest.mark.parametrize("change", ["cpu", "model", "versions"])
def test_a_new_key_makes_the_choice_again(
    change: str, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "cache"
    assert _choose(FakeLoader(Clock()), model_dir, cache_dir).backend == "torch-bf16"
    machine = XEON_AMX
    if change == "cpu":
        machine = EPYC_VNNI  # the same cache folder seen from another CPU
    elif change == "model":
        (model_dir / "model.safetensors").write_bytes(b"fine-tuned weights")
    else:
        versions = choose_backend.library_versions()
        monkeypatch.setattr(choose_backend, "library_versions", lambda: {**versions, "torch": "99.0"})

    loader = FakeLoader(Clock())
    again = _choose(loader, model_dir, cache_dir, machine)
    assert not again.cached and loader.loaded[0] == ("torch", "cpu")
    assert again.backend == ("onnx-int8" if change == "cpu" else "torch-bf16")
    assert len(list((cache_dir / "backends").glob("*.json"))) == 2


def test_a_damaged_or_foreign_cache_file_is_not_trusted(model_dir: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    path = Path(_choose(FakeLoader(Clock()), model_dir, cache_dir).cache_file)
    for damage in ("{not json", json.dumps({**json.loads(path.read_text()), "key": {"cpu": "another"}})):
        path.write_text(damage)
        loader = FakeLoader(Clock())
        assert not _choose(loader, model_dir, cache_dir).cached
        assert loader.loaded
    # A backend this version no longer has is remade too.
    path.write_text(json.dumps({**json.loads(path.read_text()), "backend": "tensorflow"}))
    assert not _choose(FakeLoader(Clock()), model_dir, cache_dir).cached


def test_an_unwritable_cache_still_gives_a_choice(model_dir: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the folder should be")
    assert _choose(FakeLoader(Clock()), model_dir, blocked).backend == "torch-bf16"


# The embedder under auto: the choice drives both its models, the log and /metrics.


def test_an_auto_embedder_runs_the_choice_and_reports_it(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from streams.embedding import embedder as embedder_module

    clock = Clock()
    loader = FakeLoader(clock, torch_bf16=(0.25, 0.0))
    calls: list[tuple[str, str, int | None]] = []

    def load_model(backend: Any, device: str, path: Path, name: str, cache: Path, threads: int | None = None) -> Any:
        calls.append((backend, device, threads))
        return loader(backend, device)

    monkeypatch.setattr(embedder_module, "load_model", load_model)
    monkeypatch.setattr(choose_backend, "read_machine", lambda: XEON_AMX)
    monkeypatch.setattr(choose_backend, "agreement_sample", lambda: TEXTS)
    monkeypatch.setattr(choose_backend, "now", clock)
    caplog.set_level(logging.INFO, logger="streams.embedding.embedder")
    embedder = embedder_module.Embedder("auto-test-model", str(model_dir), backend="auto", cache_dir=tmp_path)

    vectors = embedder.encode(["one text"])
    embedder.encode_query("a query")

    assert embedder.running_backend == "torch-bf16"
    assert embedder.choice is not None and embedder.choice.chunks_per_s == 4.0
    assert np.allclose(vectors[0], reference_vector("one text"))
    # The reference and the candidate to choose, then the indexing and query models of the choice.
    assert calls[-2:] == [("torch-bf16", "cpu", None), ("torch-bf16", "cpu", 1)]
    line = next(r.getMessage() for r in caplog.records if "embedding backend for auto-test-model" in r.getMessage())
    assert "torch-bf16 on cpu (auto)" in line and "4.0 chunks/s" in line and "amx_bf16" in line
    info = {
        sample.labels["backend"]: sample.labels
        for metric in REGISTRY.collect()
        if metric.name == "streams_embedding_backend"
        for sample in metric.samples
        if sample.labels.get("model") == "auto-test-model"
    }
    assert info["torch-bf16"]["configured"] == "auto" and "amx_bf16" in info["torch-bf16"]["reason"]
    labels = {"model": "auto-test-model"}
    assert REGISTRY.get_sample_value("streams_embedding_backend_chunks_per_second", labels) == 4.0
    assert REGISTRY.get_sample_value("streams_embedding_backend_min_cosine", labels) == pytest.approx(1.0)


def test_backends_refuse_devices_they_do_not_run_on() -> None:
    from streams.embedding.embedder import Embedder

    with pytest.raises(EmbeddingError, match="CUDA device only"):
        Embedder(MODEL, backend="torch-fp16")
    with pytest.raises(EmbeddingError, match="CPU only"):
        Embedder(MODEL, device="cuda", backend="torch-bf16")
    Embedder(MODEL, device="cuda", backend="auto")  # auto decides on first load
    from streams.settings import Settings

    assert Settings().embedding_backend == "auto"


# The real check on the bundled model.


def test_the_agreement_sample_is_the_pipelines_full_length_chunks() -> None:
    from transformers import AutoTokenizer

    from streams.embedding.embedder import default_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path(MODEL)))
    lengths = [len(tokenizer.tokenize(text)) for text in agreement_sample()]
    assert len(lengths) == 32 and len(set(agreement_sample())) == 32
    assert sum(1 for n in lengths if 240 <= n <= 254) == 16
    assert all(16 <= n <= 70 for n in lengths[16:])


class Timed:
    """A real model whose encode advances the fake clock, so that speed does not decide a real test."""

    def __init__(self, model: Any, clock: Clock, seconds_per_text: float) -> None:
        self.model, self.clock, self.seconds_per_text = model, clock, seconds_per_text
        self.tokenizer, self.max_seq_length, self.dimensions = model.tokenizer, model.max_seq_length, model.dimensions

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        self.clock.now += self.seconds_per_text * len(texts)
        vectors: np.ndarray = self.model.encode(texts, batch_size)
        return vectors


def test_real_bfloat16_agrees_on_the_sample_and_a_truncating_one_is_rejected() -> None:
    from streams.embedding.embedder import TorchModel, default_model_path

    path = str(default_model_path(MODEL))
    clock = Clock()
    models = {
        "torch": Timed(TorchModel(path, "cpu"), clock, 1.0),
        "torch-bf16": Timed(TorchModel(path, "cpu", "bfloat16"), clock, 0.5),
    }

    def load(backend: str, device: str) -> Any:
        if backend not in models:
            raise EmbeddingError(f"{backend} is not part of this test")
        return models[backend]

    texts = agreement_sample()
    choice = select(load, Machine("test", frozenset({"avx512_bf16"})), texts, clock=clock)
    assert choice.backend == "torch-bf16", choice.rejected
    assert choice.min_cosine is not None and choice.min_cosine >= 0.999

    # A bfloat16 model that reads only the first 64 word pieces of each chunk: its vectors for the
    # full-length chunks are not the reference's, and the check must say so.
    truncating = TorchModel(path, "cpu", "bfloat16")
    truncating._model.max_seq_length = 64
    models["torch-bf16"] = Timed(truncating, clock, 0.5)
    rejected = select(load, Machine("test", frozenset({"avx512_bf16"})), texts, clock=clock)
    assert rejected.backend == "torch"
    assert rejected.rejected[0].startswith("torch-bf16: disagrees with torch float32: min cosine 0.")


@pytest.mark.parametrize(("seconds_per_text", "expected"), [(0.97, "torch"), (0.85, "torch-bf16")])
def test_a_candidate_must_be_clearly_faster_than_float32(seconds_per_text: float, expected: str) -> None:
    """3 % ahead is within what a busy machine moves a short measurement by, and the choice is cached:
    float32 stays. 18 % ahead is a real gain."""
    choice, _ = _select(XEON_AMX, torch_bf16=(seconds_per_text, 0.0), onnx_int8=(2.0, 0.0), onnx=(2.0, 0.0))
    assert choice.backend == expected
