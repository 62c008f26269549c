"""The ceiling: how many chunks a second each embedding backend encodes, on the same texts in one
process, and how closely its vectors agree with PyTorch's. Needs no stack.

The texts are seeded ticket prose cut into 60-word chunks (about 80 word pieces, the size the
chunker's paragraphs mostly have). Backends take turns round by round, so a burst of load from
another process on this shared machine falls on all of them rather than on one, and each round's
CPU seconds are recorded beside its wall time."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from streams.bench.probes import Progress
from streams.embedding.embedder import Embedder
from streams.settings import EMBEDDING_BACKENDS, EmbeddingBackend, Settings

MIN_COSINE = 0.99
MEAN_COSINE = 0.995
REFERENCE: EmbeddingBackend = "torch"


def sample_texts(count: int, words: int = 60, seed: int = 13) -> list[str]:
    """`count` chunks of `words` words from seeded tickets (descriptions and comments), deterministic."""
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


def agreement(vectors: Sequence[Sequence[float]], reference: Sequence[Sequence[float]]) -> dict[str, float]:
    """Min and mean cosine between each vector and its reference (both sides re-normalized)."""
    a, b = np.asarray(vectors, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or not len(a):
        raise ValueError(f"cannot compare {a.shape} vectors with {b.shape} references")
    cosines = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"min_cosine": round(float(cosines.min()), 4), "mean_cosine": round(float(cosines.mean()), 4)}


def agrees(figures: dict[str, float]) -> bool:
    """The bar a backend must clear to stand in for PyTorch."""
    return figures["min_cosine"] >= MIN_COSINE and figures["mean_cosine"] >= MEAN_COSINE


def run(
    settings: Settings,
    progress: Progress,
    *,
    texts: int = 256,
    rounds: int = 3,
    backends: Sequence[EmbeddingBackend] = EMBEDDING_BACKENDS,
) -> dict[str, Any]:
    sample = sample_texts(texts)
    embedders: dict[str, Embedder] = {}
    result: dict[str, Any] = {}
    for backend in backends:
        embedder = Embedder(
            settings.model_name,
            settings.model_path,
            "cpu",
            settings.embed_batch_size,
            backend=backend,
            cache_dir=settings.cache_dir,
        )
        started = time.perf_counter()
        try:
            embedder.encode(sample[:8])  # load (and export, the first time) outside the timing
        except Exception as exc:  # one backend that cannot load still lets the others be measured
            progress(f"embedding: {backend} unavailable: {exc}")
            result[backend] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        embedders[backend] = embedder
        result[backend] = {
            "load_s": round(time.perf_counter() - started, 1),
            "chunks_per_s_runs": [],
            "chunks_per_cpu_s_runs": [],
        }
    if REFERENCE not in embedders:
        raise RuntimeError(f"the {REFERENCE} backend, the reference for agreement, did not load")
    vectors: dict[str, list[list[float]]] = {}
    for round_number in range(rounds):
        for name, embedder in embedders.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            vectors[name] = embedder.encode(sample)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            result[name]["chunks_per_s_runs"].append(round(len(sample) / wall, 1))
            result[name]["chunks_per_cpu_s_runs"].append(round(len(sample) / cpu, 1))
        progress(
            f"embedding: round {round_number + 1}/{rounds}: "
            + ", ".join(f"{b} {result[b]['chunks_per_s_runs'][-1]}" for b in embedders)
            + " chunks/s"
        )
    torch_rate = statistics.median(result[REFERENCE]["chunks_per_s_runs"])
    for name in embedders:
        figures = result[name]
        figures["chunks_per_s"] = round(statistics.median(figures["chunks_per_s_runs"]), 1)
        figures["chunks_per_cpu_s"] = round(statistics.median(figures["chunks_per_cpu_s_runs"]), 1)
        figures.update(agreement(vectors[name], vectors[REFERENCE]))
        figures["agrees"] = agrees(figures)
        figures["vs_torch"] = round(figures["chunks_per_s"] / torch_rate, 2)
    agreeing = [b for b in embedders if result[b]["agrees"]]
    return {
        **result,
        "texts": len(sample),
        "words_per_text": 60,
        "rounds": rounds,
        "batch_size": settings.embed_batch_size,
        "configured_backend": settings.embedding_backend,
        "fastest_agreeing": max(agreeing, key=lambda b: result[b]["chunks_per_s"]),
        "method": (
            "each backend encodes the same seeded 60-word chunks once per round, backends in turn;"
            " chunks_per_s is the median round (wall clock); chunks_per_cpu_s divides by this process's CPU"
            " seconds instead, which other processes on the shared cores disturb less; cosines against"
            " the torch vectors of the same texts"
        ),
    }
