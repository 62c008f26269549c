"""Several BEIR sets at once (`streams eval --sets DIR1,DIR2`): each set checked whole, reported on its
own, and the mean of every metric over the sets; and `streams eval stage`, which writes a seeded slice
of a public BEIR collection into the cache folder with the checksums of what it read and wrote."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

from streams.eval.golden_set import GoldenSet, GoldenSetError, _jsonl, read_corpus, read_golden_set
from streams.eval.metrics import METRICS

CACHE = Path.home() / ".cache" / "streams" / "beir"
CHECKSUMS = "checksums.json"


def read_beir_set(directory: Path, split: str = "test") -> GoldenSet:
    """A BEIR set, with every corpus id its qrels name checked against corpus.jsonl (a judged document
    the corpus lacks could never be found, and would lower every figure without saying why)."""
    if not directory.is_dir():
        raise GoldenSetError(f"{directory} is not a directory (a BEIR set has corpus.jsonl, queries.jsonl, qrels/)")
    golden = read_golden_set(directory, split)
    corpus_ids = {document.doc_id for document in read_corpus(directory)}
    unknown = sorted({doc for judged in golden.qrels.values() for doc in judged} - corpus_ids)
    if unknown:
        raise GoldenSetError(
            f"{directory}/qrels/{split}.tsv names {len(unknown)} documents missing from corpus.jsonl: {unknown[:5]}"
        )
    return golden


def parse_sets(value: str) -> list[Path]:
    """DIR1,DIR2,... as paths, each named once."""
    paths = [Path(part.strip()) for part in value.split(",") if part.strip()]
    if not paths:
        raise GoldenSetError("--sets names no directory")
    repeated = sorted({str(p) for p in paths if paths.count(p) > 1})
    if repeated:
        raise GoldenSetError(f"--sets names {', '.join(repeated)} more than once")
    return paths


def mean_report(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Every set's report and, per ranking, the mean of each metric (and of the p95 latency) over the
    sets that measured that ranking. A set counts once whatever its number of queries."""
    if not reports:
        raise ValueError("no reports")
    mean: dict[str, Any] = {}
    for mode in dict.fromkeys(mode for report in reports for mode in report["modes"]):
        measured = [report["modes"][mode] for report in reports if mode in report["modes"]]
        figures: dict[str, Any] = {
            "total": {m: round(sum(f["total"][m] for f in measured) / len(measured), 4) for m in METRICS},
            "sets": len(measured),
        }
        p95 = [f["latency_ms"]["p95"] for f in measured if "latency_ms" in f]
        if p95:
            figures["latency_ms"] = {"p95": round(sum(p95) / len(p95), 1)}
        mean[mode] = figures
    return {"sets": reports, "mean": {"modes": mean}}


def sets_table(combined: dict[str, Any]) -> str:
    """One Markdown table: a row per set and ranking, then the means."""
    columns = [*METRICS, "p95 ms"]
    lines = ["| set | ranking | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]

    def row(name: str, mode: str, figures: dict[str, Any]) -> str:
        latency = figures.get("latency_ms", {}).get("p95")
        cells = [f"{figures['total'][m]:.3f}" for m in METRICS] + ["-" if latency is None else f"{latency:.0f}"]
        return f"| {name} | {mode} | " + " | ".join(cells) + " |"

    for report in combined["sets"]:
        for mode, figures in report["modes"].items():
            lines.append(row(f"{report['set']} ({report['queries']} q)", mode, figures))
    for mode, figures in combined["mean"]["modes"].items():
        lines.append(row(f"mean of {figures['sets']}", mode, figures))
    return "\n".join(lines)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stage_slice(source: Path, target: Path, size: int | None, seed: int = 0, split: str = "test") -> dict[str, Any]:
    """Write a slice of the BEIR collection `source` to `target`: every judged query of `split`, all
    their relevant documents, and a seeded random sample of the other documents up to `size` documents
    in all (the whole corpus when `size` is None). Records source and written checksums in
    target/checksums.json and returns that record."""
    golden = read_beir_set(source, split)
    relevant = {doc for judged in golden.qrels.values() for doc in judged}
    if size is not None and size < len(relevant):
        raise GoldenSetError(
            f"--slice {size} is below the {len(relevant)} documents the {split} qrels judge relevant: "
            "a slice keeps them all"
        )
    others = sorted(document.doc_id for document in read_corpus(source) if document.doc_id not in relevant)
    extra = len(others) if size is None else min(size - len(relevant), len(others))
    keep = relevant | set(random.Random(seed).sample(others, extra))
    if target.exists():
        shutil.rmtree(target)
    (target / "qrels").mkdir(parents=True)
    written = 0
    with (target / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for row in _jsonl(source / "corpus.jsonl"):
            if str(row["_id"]) in keep:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                written += 1
    with (target / "queries.jsonl").open("w", encoding="utf-8") as out:
        for qid, text in golden.queries.items():
            out.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    with (target / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in golden.qrels.items():
            for doc, score in sorted(judged.items()):
                out.write(f"{qid}\t{doc}\t{score}\n")
    files = ["corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"]
    record = {
        "source": str(source.resolve()),
        "split": split,
        "seed": seed,
        "slice": size,
        "documents": written,
        "relevant_documents": len(relevant),
        "queries": len(golden.queries),
        "source_sha256": {name: sha256(source / name) for name in files},
        "sha256": {name: sha256(target / name) for name in files},
    }
    (target / CHECKSUMS).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return record
