"""`streams bench --plot`: a PNG from a report, also when scenarios failed."""

from __future__ import annotations

from pathlib import Path

from streams.bench.plot import write_plot
from streams.bench.stats import assemble, summary


def test_plot_writes_a_png(tmp_path: Path) -> None:
    samples = [0.8, 1.1, 1.3, 2.0, 4.5]
    report = assemble(
        {
            "steady": {"events": 5, "freshness_s": summary(samples), "freshness_samples_s": samples},
            "backfill": {
                "pipeline_chunks_per_s": 40.0,
                "encode_chunks_per_s": 80.0,
                "ratio": 0.5,
                "wall_s": 100.0,
                "cpu_s": {"pipeline": {"worker": 150.0, "elasticsearch": 30.0, "kafka": 4.0}, "cores": 2},
            },
        },
        {"cpu": "test", "cores": 2},
        {},
    )
    path = tmp_path / "bench.png"
    write_plot(report, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_results(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    write_plot(assemble({}, {}, {}), path)
    assert path.stat().st_size > 0
