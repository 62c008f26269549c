"""Which queries choose the fusion settings and which measure them (`streams eval tune`, and
`streams eval --held-out`, which measures what tune held out).

A BEIR set with a dev or train split tunes on it and is measured on its test queries. A set with test
qrels only (the project's golden set) is cut in two by a hash of each query id with a seed: a query's
half depends on its id and the seed alone, so adding queries to the set never moves one across.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from streams.eval.golden_set import GoldenSet, GoldenSetError, read_golden_set

HELD_OUT_SPLIT = "test"
# dev first: BEIR provides it for choosing settings, and train can be many times larger (every
# tuning query is asked once per retrieval setting of the grid).
TUNING_SPLITS = ("dev", "train")

ReadSet = Callable[[Path, str], GoldenSet]  # read_golden_set, or sets.read_beir_set (which checks the corpus)


@dataclass(frozen=True)
class QuerySplit:
    tuning: GoldenSet  # the queries the settings are chosen on
    held_out: GoldenSet  # the queries they are measured on, never seen while choosing
    tuning_from: str  # where each half came from, in words, for the report
    held_out_from: str
    seed: int


def in_tuning_half(query_id: str, seed: int) -> bool:
    """The hash split's rule: the first byte of sha256("<seed>:<query id>") is even."""
    return hashlib.sha256(f"{seed}:{query_id}".encode()).digest()[0] % 2 == 0


def split_queries(directory: Path, seed: int = 0, read: ReadSet = read_golden_set) -> QuerySplit:
    """The set's tuning and held-out queries: qrels/dev.tsv (else qrels/train.tsv) against qrels/test.tsv,
    or, when the set has neither, qrels/test.tsv halved by `in_tuning_half`."""
    test = read(directory, HELD_OUT_SPLIT)
    for split in TUNING_SPLITS:
        if (directory / "qrels" / f"{split}.tsv").exists():
            judged = read(directory, split)
            # A query judged in both splits would be tuned on and then measured: it stays held out.
            tuning = _only(judged, set(judged.queries) - set(test.queries))
            return _checked(QuerySplit(tuning, test, f"qrels/{split}.tsv", "qrels/test.tsv", seed))
    chosen = {qid for qid in test.queries if in_tuning_half(qid, seed)}
    return _checked(
        QuerySplit(
            _only(test, chosen),
            _only(test, set(test.queries) - chosen),
            f"qrels/test.tsv, the queries whose id hashes into the tuning half with seed {seed}",
            "qrels/test.tsv, the other half",
            seed,
        )
    )


def _only(golden: GoldenSet, query_ids: Iterable[str]) -> GoldenSet:
    keep = set(query_ids)
    return GoldenSet(
        golden.path,
        {qid: text for qid, text in golden.queries.items() if qid in keep},
        {qid: judged for qid, judged in golden.qrels.items() if qid in keep},
    )


def _checked(split: QuerySplit) -> QuerySplit:
    for name, half in (("tuning", split.tuning), ("held-out", split.held_out)):
        if not half.queries:
            raise GoldenSetError(f"{split.tuning.path}: the split leaves no {name} query (try another --seed)")
    return split
