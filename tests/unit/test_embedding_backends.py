"""The ONNX backends stand in for PyTorch: same interface, vectors that agree on seeded chunks.

The first run on a machine exports and quantizes the bundled model into the settings' cache_dir
(about 10 s here); later runs load the cached files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from streams.bench.embedding import MEAN_COSINE, MIN_COSINE, agreement, agrees, sample_texts
from streams.embedding.embedder import Embedder, session_options
from streams.embedding.export_onnx import check_mean_pooled, model_digest
from streams.errors import EmbeddingError
from streams.settings import EMBEDDING_BACKENDS, Settings

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


@pytest.mark.parametrize("backend", [b for b in EMBEDDING_BACKENDS if b != "torch"])
def test_onnx_backend_agrees_with_torch(backend: str, texts: list[str], torch_vectors: np.ndarray) -> None:
    embedder = Embedder(MODEL, backend=backend, cache_dir=Settings().cache_dir)  # type: ignore[arg-type]
    reference = Embedder(MODEL, backend="torch")

    vectors = np.asarray(embedder.encode(texts))

    figures = agreement(vectors, torch_vectors)
    assert figures["min_cosine"] >= MIN_COSINE, figures
    assert figures["mean_cosine"] >= MEAN_COSINE, figures
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
    assert agrees(agreement(torch_vectors, torch_vectors))
    drifted = torch_vectors + rng.normal(scale=0.01, size=torch_vectors.shape)  # cosine about 0.98
    assert not agrees(agreement(drifted, torch_vectors))
    one_off = torch_vectors.copy()
    one_off[3] = torch_vectors[4]  # a single wrong vector fails the minimum even if the mean holds
    figures = agreement(one_off, torch_vectors)
    assert figures["min_cosine"] < MIN_COSINE
    assert not agrees(figures)
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


def test_embedding_scenario_reports_every_backend_against_torch() -> None:
    from streams.bench.embedding import run
    from streams.bench.stats import assemble, lookup, missing_keys

    lines: list[str] = []
    result = run(Settings(embedding_backend="onnx"), lines.append, texts=8, rounds=1)

    for backend in EMBEDDING_BACKENDS:
        assert result[backend]["chunks_per_s"] > 0
        assert len(result[backend]["chunks_per_s_runs"]) == 1
        assert agrees(result[backend]), result[backend]
    assert result["torch"]["min_cosine"] == pytest.approx(1.0, abs=1e-4)
    assert result["configured_backend"] == "onnx"
    assert result["fastest_agreeing"] in EMBEDDING_BACKENDS
    assert any("round 1/1" in line for line in lines)
    report = assemble({"embedding": result}, {}, {})
    assert not [key for key in missing_keys(report) if key.startswith("embedding.")]
    assert lookup(report, "embedding.onnx-int8.min_cosine") == result["onnx-int8"]["min_cosine"]


def test_onnx_sessions_use_the_physical_cores_and_do_not_spin(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 3 if not logical else 6)
    options = session_options()

    assert options.intra_op_num_threads == 3
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    # An unknown core count (psutil may answer None) still gives a working session.
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: None)
    assert session_options().intra_op_num_threads == 1
