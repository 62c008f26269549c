"""The ceiling: how many chunks a second each embedding backend encodes, on the same texts in one
process, and how closely its vectors agree with torch float32's. Needs no stack.

The texts are the pipeline's own chunks: the project's golden set (eval/streams-golden, PostgreSQL
manual pages and seeded tickets) cut by the pipeline's chunker at the worker's window, then sorted
into three length classes measured apart, because a backend's speed-up grows with the length:

    short    16-40 word pieces   (about the 25th percentile of the pipeline's chunks)
    median   50-70               (the median is 60)
    full     240 and more        (the window: 254 word pieces and the two special tokens)

Every backend runs, "auto" too (its row says what it chose and why). Backends take turns round by
round, so a burst of load from another process on a shared machine falls on all of them rather than
on one, and each round's CPU seconds are recorded beside its wall time."""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streams.bench.probes import Progress
from streams.embedding.choose_backend import AGREEMENT_BARS, FEATURES, SAMPLE_FILE, read_machine
from streams.embedding.embedder import Embedder
from streams.settings import EMBEDDING_BACKENDS, PROJECT_ROOT, EmbeddingBackend, Settings

REFERENCE: EmbeddingBackend = "torch"
BARS: dict[str, float] = {backend: bar for backend, bar in AGREEMENT_BARS.items()}
CORPUS = PROJECT_ROOT / "eval" / "streams-golden" / "corpus.jsonl"
# Word pieces (without special tokens), lowest and highest, of each class.
LENGTH_CLASSES: dict[str, tuple[int, int]] = {"short": (16, 40), "median": (50, 70), "full": (240, 10**6)}
WINDOW_TOKENS = 254  # min(chunk_max_tokens, the model's 256 - 2), what the worker cuts at by default
OVERLAP_TOKENS = 32


def sample_texts(count: int, words: int = 60, seed: int = 13) -> list[str]:
    """`count` chunks of `words` words from seeded tickets, deterministic: the texts the experiments in
    docs/experiments/embedding were measured on (the bench itself measures the pipeline's chunks)."""
    from streams.sources.seed import seed_people
    from streams.sources.seed_tickets import generate_tickets

    rng = random.Random(seed)
    people = seed_people(50, seed)
    pool: list[str] = []
    tickets = generate_tickets(rng, people, 10**6)
    while len(pool) < count * words:
        ticket = next(tickets)
        pool.extend(ticket.description.split())
        for comment in ticket.comments:
            pool.extend(comment.body.split())
    return [" ".join(pool[i * words : (i + 1) * words]) for i in range(count)]


def pipeline_chunks(count_tokens: Callable[[str], int], corpus: Path = CORPUS) -> Iterator[tuple[str, int]]:
    """(text, word pieces) of every chunk the pipeline's chunker cuts from the golden set's documents,
    wiki pages and tickets taken in turn so that every class holds both."""
    from streams.pipeline.chunk_document import chunk_text

    documents = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    wiki = [d for d in documents if d["_id"].startswith("wiki:")]
    other = [d for d in documents if not d["_id"].startswith("wiki:")]
    for n in range(max(len(wiki), len(other))):
        for document, text_format in (
            (wiki[n] if n < len(wiki) else None, "wikitext"),
            (other[n] if n < len(other) else None, "plain"),
        ):
            if document is None:
                continue
            for chunk in chunk_text(
                document["text"],
                text_format,  # type: ignore[arg-type]
                max_tokens=WINDOW_TOKENS,
                overlap_tokens=OVERLAP_TOKENS,
                count_tokens=count_tokens,
            ):
                yield chunk.text, count_tokens(chunk.text)


def length_classes(
    count_tokens: Callable[[str], int], per_class: int, corpus: Path = CORPUS
) -> dict[str, list[tuple[str, int]]]:
    """The first `per_class` chunks of each length class, in the golden set's order (deterministic)."""
    found: dict[str, list[tuple[str, int]]] = {name: [] for name in LENGTH_CLASSES}
    for text, tokens in pipeline_chunks(count_tokens, corpus):
        for name, (low, high) in LENGTH_CLASSES.items():
            if low <= tokens <= high and len(found[name]) < per_class:
                found[name].append((text, tokens))
        if all(len(texts) >= per_class for texts in found.values()):
            break
    return found


def write_agreement_sample(count_tokens: Callable[[str], int], path: Path = SAMPLE_FILE) -> None:
    """Write auto's agreement sample: 16 full-length chunks and 8 each of the median and short classes,
    taken from past the chunks the bench measures, so the two do not share texts."""
    classes = length_classes(count_tokens, 200)
    picked = {"full": classes["full"][-16:], "median": classes["median"][-8:], "short": classes["short"][-8:]}
    texts = [text for name in ("full", "median", "short") for text, _ in picked[name]]
    source = (
        "chunks of eval/streams-golden/corpus.jsonl cut by the pipeline's chunker at 254 word pieces:"
        " 16 full-length, 8 of 50-70 word pieces, 8 of 16-40"
        " (streams.bench.embedding.write_agreement_sample)"
    )
    path.write_text(
        json.dumps({"source": source, "texts": texts}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def agreement(vectors: Sequence[Sequence[float]], reference: Sequence[Sequence[float]]) -> dict[str, float]:
    """Min and mean cosine between each vector and its reference (both sides re-normalized)."""
    a, b = np.asarray(vectors, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or not len(a):
        raise ValueError(f"cannot compare {a.shape} vectors with {b.shape} references")
    cosines = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"min_cosine": round(float(cosines.min()), 5), "mean_cosine": round(float(cosines.mean()), 5)}


def agrees(figures: dict[str, float], backend: str) -> bool:
    """The bar `backend` (auto: the backend it chose) must clear on every text to stand in for torch."""
    return figures["min_cosine"] >= BARS.get(backend, 1.0)


def cpu_features() -> dict[str, Any]:
    machine = read_machine()
    return {"cpu": machine.cpu, "gpu": machine.gpu, **machine.features()}


def run(
    settings: Settings,
    progress: Progress,
    *,
    texts: int = 64,
    rounds: int = 3,
    backends: Sequence[EmbeddingBackend] = EMBEDDING_BACKENDS,
) -> dict[str, Any]:
    features = cpu_features()
    progress(
        f"embedding: {features['cpu']}: "
        + ", ".join(f"{name} {'yes' if features[name] else 'no'}" for name in FEATURES)
        + (f", GPU {features['gpu']}" if features["gpu"] else ", no GPU")
    )
    reference = Embedder(
        settings.model_name,
        settings.model_path,
        "cpu",
        settings.embed_batch_size,
        backend="torch",
        cache_dir=settings.cache_dir,
    )
    classes = length_classes(reference.count_tokens, texts)
    samples = {name: [text for text, _ in found] for name, found in classes.items()}
    result: dict[str, Any] = {}
    embedders: dict[str, Embedder] = {}
    for backend in backends:
        device = settings.embedding_device if backend in ("torch-fp16", "auto") else "cpu"
        if backend == "torch-fp16" and not device.startswith("cuda"):
            device = "cuda" if features["gpu"] else device
        started = time.perf_counter()
        try:
            embedder = Embedder(
                settings.model_name,
                settings.model_path,
                device,
                settings.embed_batch_size,
                backend=backend,
                cache_dir=settings.cache_dir,
            )
            embedder.encode(samples["full"][:8])  # load (export, choose) outside the timing, and warm up
        except Exception as exc:  # one backend that cannot load still lets the others be measured
            progress(f"embedding: {backend} unavailable: {exc}")
            result[backend] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        embedders[backend] = embedder
        result[backend] = {"load_s": round(time.perf_counter() - started, 1)}
        if embedder.choice is not None:
            choice = embedder.choice
            result[backend].update(
                chosen=choice.backend,
                device=choice.device,
                reason=choice.reason,
                rejected=list(choice.rejected),
                cached=choice.cached,
                choice_chunks_per_s=choice.chunks_per_s,
            )
            progress(f"embedding: auto chose {choice.backend} on {choice.device}: {choice.reason}")
        for name in samples:
            result[backend][name] = {"chunks_per_s_runs": [], "chunks_per_cpu_s_runs": []}
    if REFERENCE not in embedders:
        raise RuntimeError(f"the {REFERENCE} backend, the reference for agreement, did not load")
    vectors: dict[tuple[str, str], list[list[float]]] = {}
    for round_number in range(rounds):
        for name, sample in samples.items():
            for loaded, embedder in embedders.items():
                started, cpu_started = time.perf_counter(), time.process_time()
                vectors[loaded, name] = embedder.encode(sample)
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
                result[loaded][name]["chunks_per_s_runs"].append(round(len(sample) / wall, 1))
                result[loaded][name]["chunks_per_cpu_s_runs"].append(round(len(sample) / cpu, 1))
        progress(
            f"embedding: round {round_number + 1}/{rounds}, full-length: "
            + ", ".join(f"{b} {result[b]['full']['chunks_per_s_runs'][-1]}" for b in embedders)
            + " chunks/s"
        )
    for name in samples:
        for loaded in embedders:
            figures = result[loaded][name]
            figures["chunks_per_s"] = round(statistics.median(figures["chunks_per_s_runs"]), 1)
            figures["chunks_per_cpu_s"] = round(statistics.median(figures["chunks_per_cpu_s_runs"]), 1)
            figures.update(agreement(vectors[loaded, name], vectors[REFERENCE, name]))
        for loaded in embedders:
            figures = result[loaded][name]
            figures["vs_torch"] = round(figures["chunks_per_s"] / result[REFERENCE][name]["chunks_per_s"], 2)
            figures["agrees"] = agrees(figures, str(result[loaded].get("chosen", loaded)))
    for loaded in embedders:
        result[loaded]["bar"] = BARS.get(str(result[loaded].get("chosen", loaded)), 1.0)
        result[loaded]["agrees"] = all(result[loaded][name]["agrees"] for name in samples)
    agreeing = [b for b in embedders if b != "auto" and result[b]["agrees"]]
    return {
        **result,
        "cpu_features": features,
        "classes": {
            name: {
                "texts": len(found),
                "word_pieces": list(LENGTH_CLASSES[name])
                if name != "full"
                else [LENGTH_CLASSES[name][0], WINDOW_TOKENS],
                "mean_word_pieces": round(statistics.mean(tokens for _, tokens in found), 1) if found else None,
            }
            for name, found in classes.items()
        },
        "rounds": rounds,
        "batch_size": settings.embed_batch_size,
        "configured_backend": settings.embedding_backend,
        "fastest_agreeing": max(agreeing, key=lambda b: result[b]["full"]["chunks_per_s"]),
        "method": (
            "each backend encodes the same pipeline chunks of each length class once per round, backends in"
            " turn; chunks_per_s is the median round (wall clock); chunks_per_cpu_s divides by this process's"
            " CPU seconds instead, which other processes on shared cores disturb less; cosines against the"
            " torch float32 vectors of the same texts, held to each backend's bar (auto: its choice's);"
            " fastest_agreeing is on full-length chunks"
        ),
    }
