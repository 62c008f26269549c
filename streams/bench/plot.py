"""The bench report as one PNG: the freshness distribution (histogram and CDF) and the throughputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = [float(x) for x in (report.get("steady") or {}).get("freshness_samples_s") or []]
    fig, (ax_hist, ax_bars) = plt.subplots(1, 2, figsize=(12, 4.5))
    if samples:
        ax_hist.hist(samples, bins=min(30, max(5, len(samples) // 3)), color="#4c72b0", alpha=0.8)
        ax_cdf = ax_hist.twinx()
        ordered = sorted(samples)
        ax_cdf.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], color="#dd8452")
        ax_cdf.set_ylabel("CDF")
        ax_cdf.set_ylim(0, 1.02)
        ax_hist.set_xlabel("seconds from source commit to searchable")
        ax_hist.set_ylabel("edits")
    else:
        ax_hist.text(0.5, 0.5, "no freshness samples", ha="center", va="center")
    ax_hist.set_title(f"steady freshness ({len(samples)} edits)")
    backfill = report.get("backfill") or {}
    bars = {"pipeline": backfill.get("pipeline_chunks_per_s"), "model.encode": backfill.get("encode_chunks_per_s")}
    names = [k for k, v in bars.items() if v is not None]
    ax_bars.bar(names, [bars[n] for n in names], color=["#55a868", "#c44e52"][: len(names)])
    ax_bars.set_ylabel("chunks per second")
    ratio = backfill.get("ratio")
    ax_bars.set_title(f"backfill throughput (ratio {ratio})" if ratio is not None else "backfill throughput")
    machine = report.get("machine") or {}
    fig.suptitle(f"streams bench: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
