"""The bench report as one PNG: the freshness distribution (histogram and CDF), the backfill
throughputs, and where the machine's CPU went during the backfill."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = [float(x) for x in (report.get("steady") or {}).get("freshness_samples_s") or []]
    fig, (ax_hist, ax_bars, ax_cpu) = plt.subplots(1, 3, figsize=(17, 4.5))
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
    _plot_cpu(ax_cpu, backfill)
    machine = report.get("machine") or {}
    fig.suptitle(f"streams bench: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_cpu(ax: Any, backfill: dict[str, Any]) -> None:
    used = ((backfill.get("cpu_s") or {}).get("pipeline")) or {}
    roles = sorted((role for role in used if used[role] > 0), key=lambda role: -used[role])
    if not roles:
        ax.text(0.5, 0.5, "no CPU figures", ha="center", va="center")
        ax.set_title("CPU during backfill")
        return
    ax.barh(roles, [used[role] for role in roles], color="#8172b3")
    ax.invert_yaxis()
    ax.set_xlabel("CPU seconds")
    wall, cores = backfill.get("wall_s"), (backfill.get("cpu_s") or {}).get("cores")
    available = f" of {wall * cores:.0f} available" if wall and cores else ""
    ax.set_title(f"CPU during backfill ({sum(used.values()):.0f} s{available})")
