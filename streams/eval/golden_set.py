"""Read a test collection in the BEIR layout that IR tooling shares:

    DIR/corpus.jsonl      {"_id": ..., "title": ..., "text": ...} per line
    DIR/queries.jsonl     {"_id": ..., "text": ...} per line
    DIR/qrels/test.tsv    query-id <tab> corpus-id <tab> score, with a header line

Only judged queries (those with at least one relevant document in the qrels) are evaluated.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from streams.errors import StreamsError


class GoldenSetError(StreamsError):
    """A golden set is missing a file or has a malformed line."""

    stage = "eval"


@dataclass(frozen=True)
class CorpusDocument:
    doc_id: str
    title: str
    text: str


@dataclass(frozen=True)
class GoldenSet:
    path: Path
    queries: dict[str, str]  # query id -> text, judged queries only
    qrels: dict[str, dict[str, int]]  # query id -> corpus id -> graded relevance (> 0)

    @property
    def name(self) -> str:
        return self.path.name


def _jsonl(path: Path) -> Iterator[dict[str, object]]:
    if not path.exists():
        raise GoldenSetError(f"{path} is missing (a BEIR set has corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise GoldenSetError(f"{path}:{number}: not JSON: {exc}") from exc
            if not isinstance(row, dict) or "_id" not in row:
                raise GoldenSetError(f"{path}:{number}: a line must be an object with an _id")
            yield row


def read_corpus(directory: Path) -> Iterator[CorpusDocument]:
    for row in _jsonl(directory / "corpus.jsonl"):
        yield CorpusDocument(str(row["_id"]), str(row.get("title") or ""), str(row.get("text") or ""))


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.exists():
        raise GoldenSetError(f"{path} is missing")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as tsv:
        for number, row in enumerate(csv.reader(tsv, delimiter="\t"), start=1):
            if not row or (number == 1 and row[0] in ("query-id", "query_id", "qid")):
                continue
            if len(row) != 3:
                raise GoldenSetError(f"{path}:{number}: expected query-id, corpus-id, score")
            try:
                score = int(row[2])
            except ValueError as exc:
                raise GoldenSetError(f"{path}:{number}: score {row[2]!r} is not an integer") from exc
            if score > 0:
                qrels.setdefault(row[0], {})[row[1]] = score
    return qrels


def read_golden_set(directory: Path, split: str = "test") -> GoldenSet:
    qrels = read_qrels(directory / "qrels" / f"{split}.tsv")
    texts = {str(row["_id"]): str(row.get("text") or "") for row in _jsonl(directory / "queries.jsonl")}
    missing = sorted(set(qrels) - set(texts))
    if missing:
        raise GoldenSetError(f"{directory}: qrels name queries missing from queries.jsonl: {missing[:5]}")
    if not qrels:
        raise GoldenSetError(f"{directory}: no judged queries in qrels/{split}.tsv")
    return GoldenSet(directory, {qid: texts[qid] for qid in sorted(qrels)}, qrels)
