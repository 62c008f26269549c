"""An eval report (JSON), its table, and the quality gate that compares it with a saved one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.eval.golden_set import GoldenSetError
from streams.eval.metrics import METRICS


@dataclass(frozen=True)
class Drop:
    mode: str
    metric: str
    baseline: float
    current: float | None  # None: the current report lacks this mode or metric

    def describe(self) -> str:
        if self.current is None:
            return f"{self.mode} {self.metric}: in the baseline ({self.baseline:.4f}) but missing now"
        return (
            f"{self.mode} {self.metric}: {self.current:.4f} is {self.baseline - self.current:.4f} "
            f"below the baseline {self.baseline:.4f}"
        )


def quality_drops(
    baseline: dict[str, Any], current: dict[str, Any], max_drop: float, modes: Sequence[str] | None = None
) -> list[Drop]:
    """Every total metric of every mode (or of `modes`, when only those were asked for) that fell more
    than `max_drop` below the baseline.

    A mode or metric the baseline has and the current report lacks is a drop too: a gate that passes
    because a ranking stopped being measured cannot fail, and must.
    """
    if max_drop < 0:
        raise ValueError("max_drop must be zero or positive")
    drops = []
    for mode, figures in baseline.get("modes", {}).items():
        if modes and mode not in modes:
            continue
        now = current.get("modes", {}).get(mode, {}).get("total", {})
        for metric, value in figures.get("total", {}).items():
            if metric not in now:
                drops.append(Drop(mode, metric, value, None))
            elif value - now[metric] > max_drop + 1e-12:  # a float tolerance, not a slack
                drops.append(Drop(mode, metric, value, now[metric]))
    return drops


def read_report(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GoldenSetError(f"cannot read the baseline report {path}: {exc}") from exc
    if isinstance(report, dict) and isinstance(report.get("mean"), dict):  # a `--sets` report: its mean
        report = report["mean"]
    if not isinstance(report, dict) or not isinstance(report.get("modes"), dict):
        raise GoldenSetError(f"{path} is not a `streams eval --json` report (no 'modes')")
    return report


def table(report: dict[str, Any], per_query: bool = False) -> str:
    """The totals as a Markdown table (it pastes into the README), optionally each query's figures."""
    lines = [f"golden set {report['set']}: {report['queries']} queries, {report.get('documents', '?')} documents", ""]
    lines.append("| ranking | " + " | ".join(METRICS) + " |")
    lines.append("|---|" + "---|" * len(METRICS))
    for mode, figures in report["modes"].items():
        total = figures["total"]
        lines.append(f"| {mode} | " + " | ".join(f"{total[m]:.3f}" for m in METRICS) + " |")
    if per_query:
        modes = list(report["modes"])
        lines += ["", "per query, nDCG@10 (" + ", ".join(modes) + "):"]
        queries = report["modes"][modes[0]]["queries"]
        for qid in sorted(queries):
            figures = "  ".join(f"{report['modes'][m]['queries'][qid]['ndcg@10']:.3f}" for m in modes)
            lines.append(f"  {qid:<24} {figures}  {report['query_texts'].get(qid, '')[:60]}")
    return "\n".join(lines)
