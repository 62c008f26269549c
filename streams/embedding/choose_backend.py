"""STREAMS_EMBEDDING_BACKEND=auto: the fastest backend whose vectors agree with torch float32 on the
machine at hand, chosen once per machine and model and cached.

Which backend is fastest depends on the CPU's instructions more than on anything else: bfloat16 matrix
products (AVX512-BF16, AMX) run PyTorch's bfloat16 weights at about twice float32's rate while keeping
its vectors (min cosine 0.9999); int8 products gain most with VNNI; on a plain AVX2 CPU neither
pays much. So the candidates, in order, follow what `read_machine` finds:

    a CUDA GPU                          -> torch-fp16 on it
    AMX or AVX512-BF16                  -> torch-bf16
    VNNI (avx512_vnni or avx_vnni)      -> onnx-int8
    always                              -> onnx, then torch (the reference itself)

Before a candidate is used it embeds the agreement sample (`agreement_sample.json`: chunks cut by the
pipeline's own chunker from the project's golden set, most of them full-length), and its vectors are
compared with torch float32's on the same texts. It is rejected, with its figures in the log, when its
minimum cosine is under its bar (`AGREEMENT_BARS`), when it is not at least `FASTER_BY` (10 %) faster
than torch float32 there, or when it does not load; then the next one is tried. torch float32 is the
last resort, so "auto" always ends with a backend.

The choice is written as JSON under ``<cache_dir>/backends/``, one file per key: the CPU's model and
relevant flags, the GPU, the model's name and weights' digest, and the versions of the libraries that
run it. A later start with the same key reads the file instead of measuring; a new key (another CPU,
a changed model, an upgraded torch) has no file yet, so the choice is made again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streams.errors import EmbeddingError
from streams.settings import MODEL_BACKENDS, ModelBackend

if TYPE_CHECKING:
    from streams.embedding.embedder import LoadedModel

log = logging.getLogger(__name__)

# Bumped when the candidates, their order, the bars, the margin or the sample change, so old choices
# are remade. "2": the margin below (a choice of "1" could keep a backend slower than float32).
CHOOSER_VERSION = "2"
# How much faster than torch float32 a candidate must measure to replace it. The rates are measured once,
# for a few seconds, often while the machine does other work (a worker starting beside its stack), and
# the choice is kept until the key changes: a candidate that came out 3 % ahead under load (bfloat16 on
# an AVX512-BF16 CPU without AMX: 10.0 against 9.7 chunks/s) ran at 0.68x float32 on the idle machine.
FASTER_BY = 1.10
# The minimum cosine against torch float32 that a backend's vectors must reach on every sample text.
# 16-bit floats and float32 ONNX change only rounding, so they must match almost exactly; int8 changes
# the arithmetic and is held to the bar its export was tuned for (export_onnx.FLOAT_KEPT).
AGREEMENT_BARS: dict[ModelBackend, float] = {
    "torch": 1.0,
    "torch-bf16": 0.999,
    "torch-fp16": 0.999,
    "onnx": 0.999,
    "onnx-int8": 0.99,
}
# The CPU features that decide the candidates (and that `streams bench` prints), as Linux names them.
FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
SAMPLE_FILE = Path(__file__).with_name("agreement_sample.json")
LIBRARIES = ("torch", "sentence-transformers", "transformers", "onnxruntime", "onnx")

Load = Callable[[ModelBackend, str], "LoadedModel"]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Machine:
    """What decides the candidates: the CPU's model name and flags, and the first CUDA device's name."""

    cpu: str
    flags: frozenset[str]
    gpu: str | None = None

    def has(self, feature: str) -> bool:
        # py-cpuinfo reports some flags both ways ("avx512_vnni" from /proc/cpuinfo, "avx512vnni" from CPUID).
        return _plain(feature) in {_plain(flag) for flag in self.flags}

    def features(self) -> dict[str, bool]:
        return {name: self.has(name) for name in FEATURES}


def _plain(flag: str) -> str:
    return flag.lower().replace("_", "")


def read_machine() -> Machine:
    """This machine's CPU (py-cpuinfo: its model name and flags) and CUDA device (torch), if any.

    The one place auto reads the hardware: tests replace it with a fake machine."""
    import cpuinfo
    import torch

    info = cpuinfo.get_cpu_info()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return Machine(str(info.get("brand_raw") or info.get("arch") or "unknown"), frozenset(info.get("flags", [])), gpu)


@dataclass(frozen=True)
class Candidate:
    backend: ModelBackend
    device: str
    why: str


def candidates(machine: Machine, gpu_device: str = "cuda") -> list[Candidate]:
    """The backends to try on `machine`, best first (see the module docstring)."""
    found: list[Candidate] = []
    if machine.gpu:
        found.append(Candidate("torch-fp16", gpu_device, f"a CUDA GPU ({machine.gpu})"))
    bf16 = [name for name in ("amx_bf16", "avx512_bf16") if machine.has(name)]
    if bf16:
        found.append(Candidate("torch-bf16", "cpu", f"the CPU has {' and '.join(bf16)}"))
    vnni = [name for name in ("avx512_vnni", "avx_vnni") if machine.has(name)]
    if vnni:
        found.append(Candidate("onnx-int8", "cpu", f"the CPU has {' and '.join(vnni)}"))
    found.append(Candidate("onnx", "cpu", "float32 ONNX Runtime, when faster than torch float32 here"))
    found.append(Candidate("torch", "cpu", "torch float32, the reference: no faster backend agreed"))
    return found


@dataclass(frozen=True)
class Choice:
    """Auto's pick, why, and what it measured on the agreement sample."""

    backend: ModelBackend
    device: str
    reason: str
    chunks_per_s: float | None = None
    reference_chunks_per_s: float | None = None
    min_cosine: float | None = None
    rejected: tuple[str, ...] = ()
    key: dict[str, Any] = field(default_factory=dict)
    chosen_at: str = ""
    cached: bool = False
    cache_file: str = ""


def agreement_sample() -> list[str]:
    """The fixed texts every candidate embeds (see agreement_sample.json's `source`)."""
    texts: list[str] = json.loads(SAMPLE_FILE.read_text(encoding="utf-8"))["texts"]
    return texts


def min_cosine(vectors: np.ndarray, reference: np.ndarray) -> float:
    """The lowest cosine between a vector and its reference (both re-normalized, in float64)."""
    a, b = np.asarray(vectors, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or not len(a):
        raise ValueError(f"cannot compare {a.shape} vectors with {b.shape} references")
    cosines = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cosines.min())


def now() -> float:
    """The clock candidates are timed with (tests replace it)."""
    return time.perf_counter()


def measure(model: LoadedModel, texts: Sequence[str], batch_size: int, clock: Clock) -> tuple[np.ndarray, float]:
    """The model's vectors for `texts`, and its chunks per second on them after one warm-up batch
    (the first call pays for kernel selection and allocation, which a running worker does not)."""
    model.encode(list(texts[: min(len(texts), 8)]), batch_size)
    started = clock()
    vectors = model.encode(list(texts), batch_size)
    elapsed = clock() - started
    return np.asarray(vectors, dtype=np.float32), len(texts) / elapsed if elapsed > 0 else float("inf")


def select(
    load: Load,
    machine: Machine,
    texts: Sequence[str],
    *,
    gpu_device: str = "cuda",
    batch_size: int = 64,
    clock: Clock | None = None,
) -> Choice:
    """Try `machine`'s candidates in order against torch float32 on `texts`; the first that loads,
    agrees and is faster wins."""
    clock = clock or now
    reference, reference_rate = measure(load("torch", "cpu"), texts, batch_size, clock)
    log.info("auto: torch float32 %.1f chunks/s on %d sample chunks (the reference)", reference_rate, len(texts))
    rejected: list[str] = []
    for candidate in candidates(machine, gpu_device):
        if candidate.backend == "torch":
            return Choice(
                "torch", "cpu", candidate.why, round(reference_rate, 1), round(reference_rate, 1), 1.0, tuple(rejected)
            )
        try:
            vectors, rate = measure(load(candidate.backend, candidate.device), texts, batch_size, clock)
            cosine = min_cosine(vectors, reference)
        except Exception as exc:  # a candidate that cannot run here is one more rejection, not a failure
            rejected.append(f"{candidate.backend}: did not run: {type(exc).__name__}: {exc}")
            log.warning("auto: %s rejected: it did not run: %s", candidate.backend, exc)
            continue
        bar = AGREEMENT_BARS[candidate.backend]
        figures = (
            f"min cosine {cosine:.5f} (bar {bar}), {rate:.1f} chunks/s against torch float32's {reference_rate:.1f}"
        )
        if cosine < bar:
            rejected.append(f"{candidate.backend}: disagrees with torch float32: {figures}")
            log.warning("auto: %s rejected: its vectors disagree with torch float32: %s", candidate.backend, figures)
        elif rate < FASTER_BY * reference_rate:
            rejected.append(f"{candidate.backend}: not faster than torch float32: {figures}")
            log.info(
                "auto: %s rejected: not %d %% faster than torch float32: %s",
                candidate.backend,
                round((FASTER_BY - 1) * 100),
                figures,
            )
        else:
            log.info("auto: %s accepted: %s", candidate.backend, figures)
            return Choice(
                candidate.backend,
                candidate.device,
                f"{candidate.why}; {figures}",
                round(rate, 1),
                round(reference_rate, 1),
                round(cosine, 5),
                tuple(rejected),
            )
    raise AssertionError("the candidates end with torch")  # pragma: no cover


def library_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def cache_key(machine: Machine, model_name: str, model_digest: str) -> dict[str, Any]:
    """What a choice depends on; a choice is reused only under the same key."""
    return {
        "cpu": machine.cpu,
        "features": sorted(name for name, present in machine.features().items() if present),
        "gpu": machine.gpu,
        "model": model_name,
        "model_digest": model_digest,
        "versions": library_versions(),
        "chooser": CHOOSER_VERSION,
    }


def cache_file(cache_dir: Path, model_name: str, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / "backends" / f"{model_name.replace('/', '_')}-{digest}.json"


def read_cached(path: Path, key: dict[str, Any]) -> Choice | None:
    """The choice cached at `path` for `key`; None when there is none, it is unreadable, or it was
    made under another key (or names a backend this version does not have)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != key or data.get("backend") not in MODEL_BACKENDS:
            return None
        return Choice(**{**data, "rejected": tuple(data.get("rejected", ())), "cached": True, "cache_file": str(path)})
    except (OSError, ValueError, TypeError):
        return None


def write_cached(path: Path, choice: Choice) -> None:
    """Write the choice with one rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(choice)
    data.pop("cached")
    data.pop("cache_file")
    handle, scratch = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
    os.replace(scratch, path)


# One choice at a time in a process: the worker builds several embedders at start (indexing, deletion).
_choosing = threading.Lock()


def choose(
    load: Load,
    model_name: str,
    model_path: Path,
    cache_dir: Path,
    *,
    gpu_device: str = "cuda",
    batch_size: int = 64,
    machine_reader: Callable[[], Machine] | None = None,
    sample: Callable[[], list[str]] | None = None,
    clock: Clock | None = None,
) -> Choice:
    """The cached choice for this machine and model, or a new one, measured and cached."""
    from streams.embedding.export_onnx import model_digest

    with _choosing:
        machine = (machine_reader or read_machine)()
        key = cache_key(machine, model_name, model_digest(model_path))
        path = cache_file(cache_dir, model_name, key)
        cached = read_cached(path, key)
        if cached is not None:
            return cached
        log.info(
            "auto: choosing the embedding backend for %s on %s (%s%s): once per machine and model, a few seconds",
            model_name,
            machine.cpu,
            ", ".join(key["features"]) or "no AVX2",
            f", GPU {machine.gpu}" if machine.gpu else "",
        )
        try:
            chosen = select(
                load, machine, (sample or agreement_sample)(), gpu_device=gpu_device, batch_size=batch_size, clock=clock
            )
        except EmbeddingError:
            raise
        except Exception as exc:  # the reference itself failed: nothing to compare with
            raise EmbeddingError(
                f"auto could not measure the reference backend (torch) for {model_name}: {exc}"
            ) from exc
        chosen = Choice(
            **{**asdict(chosen), "key": key, "chosen_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        )
        try:
            write_cached(path, chosen)
        except OSError as exc:  # a read-only cache costs the next start a few seconds, no more
            log.warning("auto: cannot cache the choice in %s: %s", path, exc)
        return Choice(**{**asdict(chosen), "cache_file": str(path)})
