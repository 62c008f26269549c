"""ONNX copies of the local sentence-transformers model, exported once per machine and cached.

The graph holds the whole sentence encoder: the transformer, mean pooling over the attention mask
and L2 normalization, so a caller feeds token ids and gets unit vectors back. Export runs from the
local weights only (the same folder the PyTorch backend loads), so no model hub is needed:

    torch.onnx.export (TorchScript exporter, eager attention)
      -> onnxruntime's BERT optimizer (fused Attention, SkipLayerNorm, BiasGelu)   = backend "onnx"
      -> dynamic int8 quantization (onnxruntime.quantization)                         = backend "onnx-int8"

The cache lives under ``<cache_dir>/models/<model>-<digest>/<backend>/model.onnx``, the digest
taken over the model folder's weights and config, so a different model (or a changed one) gets its
own export. A finished export is moved into place with one rename, so a process that dies halfway
leaves no half-written model for the next one to load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from streams.errors import EmbeddingError
from streams.settings import EmbeddingBackend

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
ONNX_BACKENDS: tuple[EmbeddingBackend, ...] = ("onnx", "onnx-int8")
# Bumped when the export recipe changes, so an old cached export is not reused for the new one.
RECIPE = "1"
# The FFN down-projection (BERT's `output.dense` after GELU) sees activations with outliers that
# per-tensor int8 cannot hold: quantizing it too made the vectors drift below the agreement bar
# (min cosine 0.984 against PyTorch on 300 seeded chunks). In float32 it holds 0.9925.
FLOAT_KEPT = ("/output/dense/",)


def model_digest(model_path: Path) -> str:
    """A short digest of the files that decide the model's output (weights, config, tokenizer)."""
    digest = hashlib.sha256(RECIPE.encode())
    names = ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json", "1_Pooling/config.json")
    weights = sorted(model_path.glob("*.safetensors")) or sorted(model_path.glob("pytorch_model*.bin"))
    if not weights:
        raise EmbeddingError(f"no model weights (*.safetensors, pytorch_model*.bin) in {model_path}")
    for path in [model_path / name for name in names] + weights:
        if path.exists():
            digest.update(path.relative_to(model_path).as_posix().encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:12]


def cached_onnx_model(backend: str, model_name: str, model_path: Path, cache_dir: Path) -> Path:
    """The path of `backend`'s ONNX file for the model at `model_path`, exporting it first if absent."""
    if backend not in ONNX_BACKENDS:
        raise EmbeddingError(f"no ONNX export for backend {backend!r}")
    folder = cache_dir / "models" / f"{model_name}-{model_digest(model_path)}"
    target = folder / backend / ONNX_FILE
    if target.exists():
        log.info("using cached %s export of %s: %s", backend, model_name, target)
        return target
    if backend == "onnx-int8":
        source = cached_onnx_model("onnx", model_name, model_path, cache_dir)
        _publish(target, lambda out: quantize_int8(source, out), f"int8 quantization of {model_name}")
    else:
        _publish(target, lambda out: export_float(model_path, out), f"ONNX export of {model_name}")
    return target


def _publish(target: Path, make: Callable[[Path], None], what: str) -> None:
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    log.info("%s to %s: once per machine, this takes a while", what, target.parent)
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.parent.name}-", dir=target.parent.parent))
    try:
        make(scratch / ONNX_FILE)
        try:
            os.rename(scratch, target.parent)
        except OSError:
            if not target.exists():  # not a concurrent export that got there first
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("%s done in %.1f s", what, time.monotonic() - started)


def pooling_modes(pooling: dict[str, Any]) -> list[str]:
    """The pooling a model's 1_Pooling/config.json asks for, in either format sentence-transformers
    writes: `"pooling_mode": "mean"` (the 6.x installed here) or one flag per mode
    (`"pooling_mode_mean_tokens": true`: older versions, and most published models)."""
    mode = pooling.get("pooling_mode")
    if mode is not None:
        return [mode] if isinstance(mode, str) else list(mode)
    flags = {
        "pooling_mode_mean_tokens": "mean",
        "pooling_mode_cls_token": "cls",
        "pooling_mode_max_tokens": "max",
        "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens": "weightedmean",
        "pooling_mode_lasttoken": "lasttoken",
    }
    return [flags.get(key, key) for key, on in pooling.items() if key.startswith("pooling_mode_") and on]


def check_mean_pooled(model_path: Path) -> None:
    """The exported graph bakes in mean pooling and normalization: refuse a model that pools otherwise."""
    pooling_file = model_path / "1_Pooling" / "config.json"
    modules_file = model_path / "modules.json"
    try:
        pooling = json.loads(pooling_file.read_text())
        modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads(modules_file.read_text())]
    except (OSError, ValueError, KeyError) as exc:
        raise EmbeddingError(f"cannot read the model's modules in {model_path}: {exc}") from exc
    modes = pooling_modes(pooling)
    if modes != ["mean"] or modules[:2] != ["Transformer", "Pooling"] or len(modules) > 3:
        raise EmbeddingError(
            f"the ONNX backends export Transformer + mean Pooling (+ Normalize) models only; {model_path}"
            f" has modules {modules} and pooling {modes}: use STREAMS_EMBEDDING_BACKEND=torch"
        )


def check_bert(model_path: Path) -> None:
    """The graph takes BERT's three inputs and is fused by the BERT optimizer: refuse another
    architecture before loading it (MPNet, all-mpnet-base-v2's, has no token_type_ids)."""
    try:
        model_type = json.loads((model_path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"cannot read the model's config in {model_path}: {exc}") from exc
    if model_type != "bert":
        raise EmbeddingError(
            f"the ONNX backends export BERT models only; {model_path} is a {model_type!r} model:"
            " use STREAMS_EMBEDDING_BACKEND=torch (or torch-bf16, torch-fp16)"
        )


def export_float(model_path: Path, out: Path) -> None:
    """Export the sentence encoder to float32 ONNX and fuse it with onnxruntime's BERT optimizer."""
    from onnxruntime.transformers.optimizer import optimize_model
    from sentence_transformers import SentenceTransformer

    check_bert(model_path)
    check_mean_pooled(model_path)
    model = SentenceTransformer(str(model_path), device="cpu")
    first: Any = model[0]
    transformer: Any = first.auto_model.eval()
    # The optimizer recognizes (and fuses) the attention pattern of eager attention, not of SDPA.
    transformer.set_attn_implementation("eager")
    encoder = MeanPooledEncoder(transformer).eval()
    sample = model.tokenizer(["an example", "a second, longer example"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    raw = out.with_name("raw.onnx")
    with torch.no_grad():
        torch.onnx.export(
            encoder,
            tuple(sample[name] for name in names),
            str(raw),
            dynamo=False,  # the TorchScript exporter's graph is the one onnxruntime's fusions expect
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "sentence_embedding": {0: "batch"}},
            opset_version=17,
        )
    config = transformer.config
    for chatty in ("fusion_base", "onnx_model", "onnx_model_bert"):  # a line per fusion otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    optimized = optimize_model(
        str(raw), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
    )
    optimized.save_model_to_file(str(out))
    raw.unlink()


def quantize_int8(source: Path, out: Path) -> None:
    """Dynamic int8 quantization: weights per channel ahead of time, activations per batch at run time.

    Unsigned weights: signed ones take AVX2's faster VPMADDUBSW path but saturate, and even with
    reduce_range they missed the agreement bar here (min cosine 0.9896 on 300 seeded chunks with
    FLOAT_KEPT, against 0.9925 unsigned). See FLOAT_KEPT for the layers left in float32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    kept = [n.name for n in graph.node if n.op_type == "MatMul" and _ffn_down(n.name)]
    # The quantizer logs a line per tensor on the root logger: hide that for the two seconds it runs.
    logging.disable(logging.INFO)
    try:
        quantize_dynamic(
            str(source),
            str(out),
            weight_type=QuantType.QUInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            nodes_to_exclude=kept,
            # The fused operators are in onnxruntime's domain, where shape inference finds no types.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.disable(logging.NOTSET)
    log.info("quantized to int8, %d FFN down-projections kept in float32", len(kept))


def _ffn_down(node_name: str) -> bool:
    return any(part in node_name for part in FLOAT_KEPT) and "/attention/" not in node_name


class MeanPooledEncoder(torch.nn.Module):
    """The transformer, then mean pooling over real tokens, then L2 normalization."""

    def __init__(self, transformer: torch.nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        hidden = self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)
