"""`streams bench`: the benchmark suite through the real stack (sources -> Debezium -> Kafka ->
worker -> Elasticsearch). Each scenario is a module of its own; one that fails records its error and
the others still run."""

from __future__ import annotations

import json
import logging
import subprocess
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from streams.bench.stats import SCENARIOS, assemble, machine

Scenario = Callable[[], dict[str, Any]]


class _NothingToRun(Exception):
    """Only `workers` was chosen: it starts its own workers, so none is started for the others."""


def _progress(line: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {line}", err=True)


def _run_scenario(name: str, body: Scenario) -> dict[str, Any]:
    _progress(f"== {name}")
    started = time.monotonic()
    try:
        result = body()
    except Exception as exc:  # a failed scenario is a result too
        logging.getLogger(__name__).debug("scenario %s failed", name, exc_info=True)
        _progress(f"{name} failed: {type(exc).__name__}: {exc}")
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=3)}
    result["scenario_s"] = round(time.monotonic() - started, 1)
    return result


def _commit() -> str | None:
    """The checkout's commit, so a report says which code it measured."""
    from streams.settings import PROJECT_ROOT

    try:
        done = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() or None


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}{unit}"
    return f"{value}{unit}"


def _print_summary(report: dict[str, Any]) -> None:
    m = report["machine"]
    click.echo(f"machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB")
    s = report["steady"]
    f = s.get("freshness_s") or {}
    click.echo(
        f"steady       {_fmt(s.get('events'))} edits; freshness p50 {_fmt(f.get('p50'), 's')}"
        f" p95 {_fmt(f.get('p95'), 's')} p99 {_fmt(f.get('p99'), 's')} max {_fmt(f.get('max'), 's')}"
    )
    b = report["backfill"]
    click.echo(
        f"backfill     pipeline {_fmt(b.get('pipeline_chunks_per_s'))} chunks/s, model.encode"
        f" {_fmt(b.get('encode_chunks_per_s'))} chunks/s, ratio {_fmt(b.get('ratio'))}"
    )
    i = report["incremental"]
    i_p50 = (i.get("freshness_s") or {}).get("p50")
    click.echo(
        f"incremental  {_fmt(i.get('chunks_embedded_per_edit'))} chunks embedded and"
        f" {_fmt(i.get('chunks_written_per_edit'))} written per edit (each by another author) of a"
        f" {_fmt(i.get('whole_doc_chunks_per_edit'))}-chunk page; searchable p50 {_fmt(i_p50, 's')}"
    )
    g = report["forget"]
    u, ub = g.get("unsearchable_s") or {}, g.get("backlog_unsearchable_s") or {}
    click.echo(
        f"forget       unsearchable p50 {_fmt(u.get('p50'), 's')} max {_fmt(u.get('max'), 's')};"
        f" behind a backlog p50 {_fmt(ub.get('p50'), 's')} max {_fmt(ub.get('max'), 's')}"
    )
    w = report.get("workers")
    if w and not w.get("error"):
        figures = ", ".join(f"{r['workers']}: {r['chunks_per_s']} chunks/s" for r in w["runs"])
        click.echo(f"workers      {figures} on {w.get('cores')} cores")
    for name in (*SCENARIOS, "workers"):
        if (report.get(name) or {}).get("error"):
            click.echo(f"{name:<12} ERROR {report[name]['error']}")


@click.command()
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the report as JSON here."
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG of freshness and throughput here.",
)
@click.option("--quick", is_flag=True, help="Short runs (15 s steady load, 60 documents, 2 edits, 3 forget requests).")
@click.option("--only", default=",".join(SCENARIOS), show_default=True, help="Comma-separated scenarios to run.")
@click.option("--rate", type=click.FloatRange(min=0.1), default=5.0, show_default=True, help="Steady edits per second.")
def bench(json_path: Path | None, plot_path: Path | None, quick: bool, only: str, rate: float) -> None:
    """Benchmark the real stack: freshness under steady edits, backfill throughput against raw
    model.encode, proportional incremental edits, and deletion-request latency (also behind a backlog).

    Starts a worker when none answers at the worker URL (and stops it at the end). Writes real rows
    into the source databases.

    \b
    Examples:
      streams bench --quick
      streams bench --json bench.json --plot bench.png
      streams bench --only steady,forget --rate 10
      streams bench --only workers   # throughput with 1, 2 and 3 worker processes (stop your worker first)
    """
    from streams.bench import backfill, forget, incremental, steady, workers
    from streams.bench.probes import running_worker, wait_caught_up
    from streams.clients import elasticsearch_client
    from streams.settings import get_settings

    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    chosen = [s.strip() for s in only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in (*SCENARIOS, "workers")]
    if unknown:
        raise click.BadParameter(
            f"unknown {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}, workers", param_hint="--only"
        )
    settings = get_settings()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    client = elasticsearch_client(settings)
    sizes = {
        "duration_s": 15.0 if quick else 60.0,
        "docs": 60 if quick else 300,
        "edits": 2 if quick else 5,
        "forget_requests": 3 if quick else 20,
        "backlog": 1_000 if quick else 10_000,
    }
    plan: dict[str, Scenario] = {
        "steady": lambda: steady.run(
            settings, client, _progress, rate=rate, duration_s=sizes["duration_s"], drain_s=60.0 if quick else 120.0
        ),
        "backfill": lambda: backfill.run(settings, client, _progress, docs=int(sizes["docs"])),
        "incremental": lambda: incremental.run(settings, client, _progress, edits_count=int(sizes["edits"])),
        "forget": lambda: forget.run(
            settings, client, _progress, requests=int(sizes["forget_requests"]), backlog=int(sizes["backlog"])
        ),
    }
    results: dict[str, dict[str, Any]] = {}
    warm_up_s: float | None = None
    catch_up_s: float | None = None
    started = False
    try:
        if not any(name in chosen for name in SCENARIOS):
            raise _NothingToRun
        with running_worker(settings, _progress, settings.stack_home / "worker-bench.log") as started:
            try:
                catch_up_s = wait_caught_up(settings, _progress)
                warm_up_s = steady.warm_up(settings, client, _progress)
            except Exception as exc:  # the scenarios still run and say what they see
                _progress(f"warm-up failed: {exc}")
            for name in SCENARIOS:
                if name in chosen:
                    results[name] = _run_scenario(name, plan[name])
    except _NothingToRun:
        pass
    except Exception as exc:
        for name in chosen:
            results.setdefault(name, {"error": f"worker: {type(exc).__name__}: {exc}"})
        started = False
    if "workers" in chosen:
        # Its own worker processes, 1 then 2 then 3, after the single worker above has stopped.
        results["workers"] = _run_scenario(
            "workers", lambda: workers.run(settings, client, _progress, docs=30 if quick else 120)
        )
    options = {
        "started_at": started_at,
        "commit": _commit(),
        "catch_up_s": None if catch_up_s is None else round(catch_up_s, 1),
        "warm_up_s": None if warm_up_s is None else round(warm_up_s, 2),
        "quick": quick,
        "rate_per_s": rate,
        **sizes,
        "worker_started_by_bench": started,
    }
    report = assemble(results, machine(), options)
    if "workers" in results:
        report["workers"] = results["workers"]
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, default=str))
        _progress(f"report written to {json_path}")
    if plot_path:
        from streams.bench.plot import write_plot

        write_plot(report, plot_path)
        _progress(f"plot written to {plot_path}")
    _print_summary(report)
