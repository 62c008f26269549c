"""The other backends stand in for torch float32: same interface, vectors that agree on seeded chunks.

The first run on a machine exports and quantizes the bundled model into the settings' cache_dir
(about 10 s here); later runs load the cached files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from streams.bench.embedding import agreement, agrees, sample_texts
from streams.embedding.choose_backend import AGREEMENT_BARS
from streams.embedding.embedder import Embedder, session_options
from streams.embedding.export_onnx import check_bert, check_mean_pooled, model_digest
from streams.errors import EmbeddingError
from streams.settings import Settings

MODEL = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return sample_texts(20)


@pytest.fixture(scope="module")
def torch_vectors(texts: list[str]) -> np.ndarray:
    return np.asarray(Embedder(MODEL, backend="torch").encode(texts))


def test_sample_is_deterministic_sixty_word_prose() -> None:
    sample = sample_texts(20)
    assert sample == sample_texts(20)
    assert len(set(sample)) == 20
    assert all(len(text.split()) == 60 for text in sample)
    assert sample != sample_texts(20, seed=14)


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8", "torch-bf16"])
def test_cpu_backend_agrees_with_torch(backend: str, texts: list[str], torch_vectors: np.ndarray) -> None:
    embedder = Embedder(MODEL, backend=backend, cache_dir=Settings().cache_dir)  # type: ignore[arg-type]
    reference = Embedder(MODEL, backend="torch")

    vectors = np.asarray(embedder.encode(texts))

    figures = agreement(vectors, torch_vectors)
    assert figures["min_cosine"] >= AGREEMENT_BARS[backend], figures  # type: ignore[index]
    assert agrees(figures, backend)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert embedder.dimensions == reference.dimensions == 384
    assert embedder.max_tokens == reference.max_tokens
    assert embedder.count_tokens(texts[0]) == reference.count_tokens(texts[0])


async def test_onnx_backend_encodes_off_the_event_loop_in_input_order(texts: list[str]) -> None:
    # Float32: int8 scales its activations per batch, so its vectors move a little with the company.
    embedder = Embedder(MODEL, backend="onnx", cache_dir=Settings().cache_dir)
    # Different lengths, so the longest-first batching has to put the vectors back in order.
    picked = [texts[0][:40], texts[1], texts[2][:10]]

    together = await embedder.encode_async(picked)

    one_by_one = [embedder.encode([text])[0] for text in picked]
    assert np.allclose(together, one_by_one, atol=1e-4)


def test_agreement_bar_rejects_drifted_vectors(torch_vectors: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    assert agrees(agreement(torch_vectors, torch_vectors), "torch-bf16")
    drifted = torch_vectors + rng.normal(scale=0.01, size=torch_vectors.shape)  # cosine about 0.98
    assert not agrees(agreement(drifted, torch_vectors), "onnx-int8")
    # Cosine about 0.997: within int8's bar (0.99), not within bfloat16's (0.999).
    slightly = torch_vectors + rng.normal(scale=0.004, size=torch_vectors.shape)
    assert agrees(agreement(slightly, torch_vectors), "onnx-int8")
    assert not agrees(agreement(slightly, torch_vectors), "torch-bf16")
    one_off = torch_vectors.copy()
    one_off[3] = torch_vectors[4]  # a single wrong vector fails the minimum even if the mean holds
    figures = agreement(one_off, torch_vectors)
    assert figures["mean_cosine"] > 0.95
    assert not agrees(figures, "onnx-int8")
    with pytest.raises(ValueError):
        agreement(torch_vectors[:3], torch_vectors)


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(EmbeddingError, match="unknown embedding backend"):
        Embedder(MODEL, backend="tensorflow")  # type: ignore[arg-type]
    with pytest.raises(EmbeddingError, match="CPU only"):
        Embedder(MODEL, device="cuda", backend="onnx")
    with pytest.raises(ValidationError):
        Settings(embedding_backend="tensorflow")  # type: ignore[arg-type]
    assert Settings(embedding_backend="onnx").embedding_backend == "onnx"


def _fake_model(folder: Path, pooling: dict[str, bool]) -> Path:
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {"type": "sentence_transformers.models.Transformer"},
                {"type": "sentence_transformers.models.Pooling"},
                {"type": "sentence_transformers.models.Normalize"},
            ]
        )
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return folder


def test_cache_key_follows_the_weights(tmp_path: Path) -> None:
    model = _fake_model(tmp_path / "m", {"pooling_mode_mean_tokens": True})
    before = model_digest(model)
    assert model_digest(model) == before
    (model / "model.safetensors").write_bytes(b"other weights")
    assert model_digest(model) != before
    (model / "model.safetensors").unlink()
    with pytest.raises(EmbeddingError, match="no model weights"):
        model_digest(model)


def test_export_refuses_a_model_that_does_not_mean_pool(tmp_path: Path) -> None:
    check_mean_pooled(_fake_model(tmp_path / "mean", {"pooling_mode_mean_tokens": True}))
    # The format the installed sentence-transformers writes (a model saved here for `migrate --model`).
    check_mean_pooled(_fake_model(tmp_path / "mean-new", {"embedding_dimension": 384, "pooling_mode": "mean"}))
    cls = _fake_model(tmp_path / "cls", {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    for model in (
        cls,
        _fake_model(tmp_path / "cls-new", {"pooling_mode": "cls"}),
        _fake_model(tmp_path / "two", {"pooling_mode": ["mean", "max"]}),
    ):
        with pytest.raises(EmbeddingError, match="mean Pooling"):
            check_mean_pooled(model)


def test_export_refuses_a_model_that_is_not_bert(tmp_path: Path) -> None:
    model = _fake_model(tmp_path / "m", {"pooling_mode_mean_tokens": True})
    (model / "config.json").write_text(json.dumps({"model_type": "bert"}))
    check_bert(model)
    (model / "config.json").write_text(json.dumps({"model_type": "mpnet"}))  # all-mpnet-base-v2's
    with pytest.raises(
        EmbeddingError, match=r"BERT models only; .* is a 'mpnet' model: use STREAMS_EMBEDDING_BACKEND=torch"
    ):
        check_bert(model)


def test_embedding_scenario_reports_each_length_class_against_torch(tmp_path: Path) -> None:
    from streams.bench.embedding import LENGTH_CLASSES, run
    from streams.bench.stats import assemble, lookup, missing_keys
    from streams.embedding.choose_backend import Choice, cache_file, cache_key, read_machine, write_cached
    from streams.embedding.embedder import default_model_path
    from streams.embedding.export_onnx import model_digest

    # auto's choice for this machine, cached beforehand so that the scenario measures no candidates.
    key = cache_key(read_machine(), MODEL, model_digest(default_model_path(MODEL)))
    write_cached(cache_file(tmp_path, MODEL, key), Choice("torch-bf16", "cpu", "cached by the test", key=key))
    lines: list[str] = []
    settings = Settings(embedding_backend="auto", cache_dir=tmp_path)
    result = run(settings, lines.append, texts=3, rounds=1, backends=("torch", "torch-bf16", "auto"))

    for backend in ("torch", "torch-bf16", "auto"):
        for length in LENGTH_CLASSES:
            figures = result[backend][length]
            assert figures["chunks_per_s"] > 0 and len(figures["chunks_per_s_runs"]) == 1
            assert figures["agrees"], (backend, length, figures)
    assert result["torch"]["full"]["min_cosine"] == pytest.approx(1.0, abs=1e-4)
    assert result["auto"]["chosen"] == "torch-bf16" and result["auto"]["cached"]
    assert result["auto"]["bar"] == 0.999
    assert result["classes"]["full"]["texts"] == 3 and result["classes"]["full"]["mean_word_pieces"] >= 240
    assert result["classes"]["short"]["mean_word_pieces"] <= 40
    assert set(result["cpu_features"]) >= {"cpu", "avx2", "avx512_vnni", "avx512_bf16", "amx_bf16"}
    assert result["configured_backend"] == "auto"
    assert result["fastest_agreeing"] in ("torch", "torch-bf16")
    assert any("round 1/1" in line for line in lines) and any("avx512_bf16" in line for line in lines)
    report = assemble({"embedding": result}, {}, {})
    assert not [key for key in missing_keys(report) if key.startswith("embedding.")]
    assert lookup(report, "embedding.auto.full.min_cosine") == result["auto"]["full"]["min_cosine"]
    assert lookup(report, "embedding.onnx.full.chunks_per_s") is None  # not run: null, not absent


def test_onnx_sessions_use_the_physical_cores_and_do_not_spin(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 3 if not logical else 6)
    options = session_options()

    assert options.intra_op_num_threads == 3
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    # An unknown core count (psutil may answer None) still gives a working session.
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: None)
    assert session_options().intra_op_num_threads == 1


def test_tokens_are_counted_beside_encoding_with_tokenizers_of_their_own(texts: list[str]) -> None:
    """Planning counts tokens in its threads while the embedding thread encodes: a fast tokenizer shared
    between them fails now and then, when one call sets padding as the other runs."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    embedder = Embedder(MODEL, backend="torch")
    counts = {embedder.count_tokens(text) for text in texts}
    used: dict[int, object] = {}

    def count_all() -> list[int]:
        result = [embedder.count_tokens(text) for text in texts]
        used[threading.get_ident()] = embedder._counting.tokenizer
        return result

    with ThreadPoolExecutor(max_workers=3) as pool:
        encoding = pool.submit(lambda: [embedder.encode(texts) for _ in range(3)])
        counted = [pool.submit(count_all) for _ in range(6)]
        assert all(set(future.result()) <= counts for future in counted)
        assert len(encoding.result()) == 3
    tokenizers = list(used.values())
    assert all(tokenizer is not embedder.model.tokenizer for tokenizer in tokenizers)  # never the model's
    assert len({id(tokenizer) for tokenizer in tokenizers}) == len(used)  # one per thread
