"""`streams bench`: the benchmark suite through the real stack (sources -> Debezium -> Kafka ->
worker -> Elasticsearch). Each scenario is a module of its own; one that fails records its error and
the others still run."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from streams.bench.stats import SCENARIOS, STACKLESS, assemble, machine
from streams.cli import number_option
from streams.sources.seed import CONFIGURE_EXAMPLES, examples_not_configured

# The backfill burst, in documents: with --quick about 5,000 source rows (a ticket with its comments is
# about 3.5 rows, a CRM record one; 100 of them are wiki pages), else the 50,000 documents of a large
# first snapshot.
QUICK_BURST = 2_400
FULL_BURST = 50_000

if TYPE_CHECKING:
    from streams.bench.probes import MetricsSnapshot
    from streams.settings import Settings

Scenario = Callable[[], dict[str, Any]]

# Opt-in: never in the default run. It starts its own worker processes (1, then 2, then 3), so no
# other worker may be running, and it takes minutes.
OPT_IN: tuple[str, ...] = ("workers",)
DEAD = "streams_dead_letters_total"


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


def _print_embedding(e: dict[str, Any]) -> None:
    from streams.embedding.choose_backend import FEATURES
    from streams.settings import EMBEDDING_BACKENDS

    features = e.get("cpu_features") or {}
    if features:
        flags = ", ".join(f"{name} {'yes' if features.get(name) else 'no'}" for name in FEATURES)
        click.echo(f"embedding    CPU {features.get('cpu')}: {flags}; GPU {features.get('gpu') or 'none'}")
    classes = e.get("classes") or {}
    for name, figures in classes.items():
        click.echo(
            f"embedding    {name:<6} {figures.get('texts')} chunks, {figures.get('word_pieces')} word pieces"
            f" (mean {figures.get('mean_word_pieces')})"
        )
    for backend in EMBEDDING_BACKENDS:
        figures = e.get(backend) or {}
        if "error" in figures:
            click.echo(f"embedding    {backend:<10} unavailable: {figures['error']}")
            continue
        if not figures:
            continue
        marks = [f"chose {figures['chosen']}"] if figures.get("chosen") else []
        if backend == e.get("configured_backend"):
            marks.append("configured")
        click.echo(f"embedding    {backend:<10}{' (' + ', '.join(marks) + ')' if marks else ''}")
        for name in classes:
            by_length = figures.get(name) or {}
            click.echo(
                f"               {name:<6} {_fmt(by_length.get('chunks_per_s'))} chunks/s"
                f" (runs {by_length.get('chunks_per_s_runs')}), {_fmt(by_length.get('vs_torch'))}x torch,"
                f" {_fmt(by_length.get('chunks_per_cpu_s'))} per CPU-second, cosine min"
                f" {by_length.get('min_cosine')} mean {by_length.get('mean_cosine')}"
                f"{'' if by_length.get('agrees', True) else ' BELOW ITS BAR ' + str(figures.get('bar'))}"
            )
    auto = e.get("auto") or {}
    if auto.get("reason"):
        click.echo(f"embedding    auto chose {auto.get('chosen')} on {auto.get('device')}: {auto['reason']}")
        for line in auto.get("rejected") or []:
            click.echo(f"embedding    auto rejected {line}")


def _print_summary(report: dict[str, Any], chosen: list[str]) -> None:
    m = report["machine"]
    click.echo(f"machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB")
    printers: dict[str, Callable[[dict[str, Any]], None]] = {
        "embedding": _print_embedding,
        "steady": _print_steady,
        "applications": _print_applications,
        "backfill": _print_backfill,
        "incremental": _print_incremental,
        "forget": _print_forget,
        "search": _print_search,
    }
    for name in SCENARIOS:  # only what ran: a figure of a scenario not chosen would only be dashes
        scenario = report.get(name) or {}
        if name in chosen and scenario.get("skipped") and name != "applications":
            click.echo(f"{name:<12} skipped: {scenario['skipped']}")
        elif name in chosen and not scenario.get("error"):
            printers[name](report[name])
    _print_workers(report, chosen)
    _print_errors(report, chosen)


def _print_steady(s: dict[str, Any]) -> None:
    f = s.get("freshness_s") or {}
    click.echo(
        f"steady       {_fmt(s.get('events'))} edits; freshness p50 {_fmt(f.get('p50'), 's')}"
        f" p95 {_fmt(f.get('p95'), 's')} p99 {_fmt(f.get('p99'), 's')} max {_fmt(f.get('max'), 's')}"
    )


def _print_applications(a: dict[str, Any]) -> None:
    if a.get("skipped"):
        click.echo(f"applications skipped: {a['skipped']}")
    for source, figures in (a.get("freshness_by_source_s") or {}).items():
        click.echo(
            f"applications {source}: {_fmt(figures.get('count'))} edits through its API; freshness"
            f" p50 {_fmt(figures.get('p50'), 's')} p99 {_fmt(figures.get('p99'), 's')}"
            f" max {_fmt(figures.get('max'), 's')}"
        )


def _print_backfill(b: dict[str, Any]) -> None:
    click.echo(
        f"backfill     {b.get('documents', '-')} documents ({b.get('rows', '-')} rows) in {_fmt(b.get('wall_s'), 's')};"
        f" pipeline {_fmt(b.get('pipeline_chunks_per_s'))} chunks/s, raw encode"
        f" ({b.get('encode_backend') or '-'}) {_fmt(b.get('encode_chunks_per_s'))} chunks/s,"
        f" ratio {_fmt(b.get('ratio'))}"
    )
    during = b.get("during_backfill") or {}
    fresh, gone = during.get("live_freshness_s") or {}, during.get("forget_unsearchable_s") or {}
    click.echo(
        f"             during it: live edits p50 {_fmt(fresh.get('p50'), 's')} p99 {_fmt(fresh.get('p99'), 's')}"
        f" ({during.get('live_edits', 0)} edits, {during.get('live_never_searchable', 0)} never searchable),"
        f" forget p50 {_fmt(gone.get('p50'), 's')} p99 {_fmt(gone.get('p99'), 's')}"
        f" ({during.get('forget_requests', 0)} requests)"
    )


def _print_incremental(i: dict[str, Any]) -> None:
    i_p50 = (i.get("freshness_s") or {}).get("p50")
    click.echo(
        f"incremental  {_fmt(i.get('chunks_embedded_per_edit'))} chunks embedded and"
        f" {_fmt(i.get('chunks_written_per_edit'))} written per edit (each by another author) of a"
        f" {_fmt(i.get('whole_doc_chunks_per_edit'))}-chunk page; searchable p50 {_fmt(i_p50, 's')}"
    )


def _print_forget(g: dict[str, Any]) -> None:
    u, ub = g.get("unsearchable_s") or {}, g.get("backlog_unsearchable_s") or {}
    click.echo(
        f"forget       unsearchable p50 {_fmt(u.get('p50'), 's')} p99 {_fmt(u.get('p99'), 's')}"
        f" max {_fmt(u.get('max'), 's')}; behind a backlog p50 {_fmt(ub.get('p50'), 's')}"
        f" p99 {_fmt(ub.get('p99'), 's')} max {_fmt(ub.get('max'), 's')}"
    )
    located = g.get("locate_s") or {}
    click.echo(
        f"             locate (subject access report) p50 {_fmt(located.get('p50'), 's')}"
        f" max {_fmt(located.get('max'), 's')}"
    )
    for label, key in (("nothing pending", "phase_mean_s"), ("behind a backlog", "backlog_phase_mean_s")):
        if g.get(key):
            phases = ", ".join(f"{phase} {seconds:.3f}" for phase, seconds in g[key].items())
            click.echo(f"             mean s per request, {label}: {phases}")


def _print_search(q: dict[str, Any]) -> None:
    for load in ("idle", "edits"):
        parts = []
        for k in (10, 100):
            f = (q.get(f"{load}_k{k}") or {}).get("latency_ms") or {}
            parts.append(
                f"k={k} p50 {_fmt(f.get('p50'), ' ms')} p95 {_fmt(f.get('p95'), ' ms')} p99 {_fmt(f.get('p99'), ' ms')}"
            )
        click.echo(f"search       {_fmt(q.get('clients'))} clients, {load}: " + "; ".join(parts))
        ratios = []
        for k in (10, 100):
            cell = q.get(f"{load}_k{k}") or {}
            ratios.append(f"k={k} p50 {_fmt(cell.get('ratio_p50'))} p95 {_fmt(cell.get('ratio_p95'))}")
        click.echo("             /search ÷ the same requests straight to Elasticsearch: " + "; ".join(ratios))


def _print_workers(report: dict[str, Any], chosen: list[str]) -> None:
    w = report.get("workers")
    if "workers" in chosen and w and w.get("skipped"):
        click.echo(f"workers      skipped: {w['skipped']}")
    elif "workers" in chosen and w and not w.get("error"):
        figures = ", ".join(f"{r['workers']}: {r['chunks_per_s']} chunks/s" for r in w["runs"])
        click.echo(f"workers      {figures} on {w.get('cores')} cores")


def _print_errors(report: dict[str, Any], chosen: list[str]) -> None:
    for name in (*SCENARIOS, *OPT_IN):
        if name in chosen and (report.get(name) or {}).get("error"):
            click.echo(f"{name:<12} ERROR {report[name]['error']}")
        lost = (report.get(name) or {}).get("dead_letters") or {}
        if name in chosen and lost:
            stages = ", ".join(f"{count:g} at {stage}" for stage, count in sorted(lost.items()))
            click.echo(f"{name:<12} DEAD LETTERS during the scenario: {stages} (see the worker's log)")


def dead_letters(before: MetricsSnapshot | None, after: MetricsSnapshot | None) -> dict[str, float] | None:
    """The events the worker dead-lettered between two scrapes, by stage (None: a scrape failed). A
    scenario's figures are only worth their changes reaching the index: a change given up on is counted
    here, not hidden in the timings of the others."""
    from streams.bench.probes import restarted

    if before is None or after is None:
        return None
    counted = {dict(labels).get("stage", ""): value for (name, labels), value in after.samples.items() if name == DEAD}
    since = _nothing_counted() if restarted(before, after) else before  # a new process counts from 0
    lost = {stage: value - since.value(DEAD, stage=stage) for stage, value in counted.items()}
    return {stage: count for stage, count in lost.items() if count > 0}


def _nothing_counted() -> MetricsSnapshot:
    from streams.bench.probes import MetricsSnapshot

    return MetricsSnapshot({})


def _scrape_or_none(settings: Settings) -> MetricsSnapshot | None:
    from streams.bench.probes import BenchError, scrape

    try:
        return scrape(settings)
    except BenchError:
        return None


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
@click.option(
    "--quick", is_flag=True, help="Short runs (15 s steady load, a 2,400-document burst, 2 edits, 3 forget requests)."
)
@click.option(
    "--only",
    default=",".join(SCENARIOS),
    show_default=True,
    help="Comma-separated scenarios to run; `workers` (1, 2, 3 worker processes) only when named.",
)
@number_option("--rate", default=5.0, at_least=0.1, help="Steady edits per second.")
@click.option(
    "--backfill-docs",
    type=click.IntRange(min=3),
    default=None,
    help=(
        "Documents in the backfill burst (default: 2,400 with --quick, about 5,000 rows, else 50,000); a third"
        " of them, up to 100, are wiki pages."
    ),
)
def bench(
    json_path: Path | None, plot_path: Path | None, quick: bool, only: str, rate: float, backfill_docs: int | None
) -> None:
    """Benchmark the ceiling and the real stack: chunks/s and agreement of every embedding backend and
    of auto's choice, on short, median and full-length chunks, with the CPU's flags (needs no stack),
    freshness under steady edits, backfill throughput against the configured
    backend's raw encode, proportional incremental edits, deletion-request latency (also behind a
    backlog), and /search latency with 8 concurrent clients at k=10 and k=100, idle and under edits.

    Starts a worker when none answers at the worker URL (and stops it at the end), unless only
    stack-free scenarios (embedding) are chosen. Writes real rows into the source databases.

    \b
    Examples:
      streams bench --quick
      streams bench --json bench.json --plot bench.png
      streams bench --only steady,forget --rate 10
      streams bench --only backfill --backfill-docs 5000
      streams bench --only embedding --json embedding.json
      streams bench --only workers   # throughput with 1, 2 and 3 worker processes (stop your worker first)
    """
    from streams.bench import embedding
    from streams.settings import get_settings

    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    # A SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the worker the bench started is stopped too.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    chosen = [s.strip() for s in only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in (*SCENARIOS, *OPT_IN)]
    if unknown:
        raise click.BadParameter(
            f"unknown {', '.join(unknown)}; choose from {', '.join((*SCENARIOS, *OPT_IN))}", param_hint="--only"
        )
    settings = get_settings()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sizes = {
        "duration_s": 15.0 if quick else 60.0,
        "docs": backfill_docs or (QUICK_BURST if quick else FULL_BURST),
        "edits": 2 if quick else 5,
        "forget_requests": 3 if quick else 20,
        "backlog": 1_000 if quick else 10_000,
        "embedding_texts": 16 if quick else 64,
        "embedding_rounds": 3 if quick else 5,
    }
    results: dict[str, dict[str, Any]] = {}
    # Before any worker starts, so the backends have the CPU to themselves.
    for name in STACKLESS:
        if name in chosen:
            results[name] = _run_scenario(
                name,
                lambda: embedding.run(
                    settings, _progress, texts=int(sizes["embedding_texts"]), rounds=int(sizes["embedding_rounds"])
                ),
            )
    stack_chosen = [name for name in chosen if name not in STACKLESS and name not in OPT_IN]
    configured = settings.sources  # read from the mappings' folder: once
    if missing := examples_not_configured(configured):
        # The scenarios that write rows by SQL write the example sources: unindexed rows would only time out.
        reason = f"it writes the example sources, and {', '.join(missing)} is not configured ({CONFIGURE_EXAMPLES})"
        for name in [*stack_chosen, *(n for n in OPT_IN if n in chosen)]:
            if name != "applications":
                results[name] = {"skipped": reason}
                _progress(f"{name} skipped: {reason}")
        stack_chosen = [name for name in stack_chosen if name == "applications"]
    warm_up_s, catch_up_s, started = None, None, False
    if stack_chosen:
        warm_up_s, catch_up_s, started = _run_stack_scenarios(settings, stack_chosen, sizes, rate, quick, results)
    if "workers" in chosen and "workers" not in results:
        # Its own worker processes, 1 then 2 then 3, after the single worker above has stopped.
        from streams.bench import workers
        from streams.clients import elasticsearch_client

        client = elasticsearch_client(settings)
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
    _print_summary(report, chosen)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _run_stack_scenarios(
    settings: Settings,
    chosen: list[str],
    sizes: dict[str, float],
    rate: float,
    quick: bool,
    results: dict[str, dict[str, Any]],
) -> tuple[float | None, float | None, bool]:
    """The scenarios that need the stack, around one worker; returns (warm-up s, catch-up s, started)."""
    from streams.bench import applications, backfill, forget, incremental, search_latency, steady
    from streams.bench.probes import running_worker, wait_caught_up
    from streams.clients import elasticsearch_client
    from streams.stack import connectors
    from streams.stack.runner import StackError

    client = elasticsearch_client(settings)
    plan: dict[str, Scenario] = {
        "steady": lambda: steady.run(
            settings, client, _progress, rate=rate, duration_s=sizes["duration_s"], drain_s=60.0 if quick else 120.0
        ),
        "applications": lambda: applications.run(
            settings, client, _progress, rate=min(rate, 2.0), duration_s=sizes["duration_s"], drain_s=60.0
        ),
        "backfill": lambda: backfill.run(
            settings, client, _progress, docs=int(sizes["docs"]), people=int(sizes["forget_requests"])
        ),
        "incremental": lambda: incremental.run(settings, client, _progress, edits_count=int(sizes["edits"])),
        "forget": lambda: forget.run(
            settings, client, _progress, requests=int(sizes["forget_requests"]), backlog=int(sizes["backlog"])
        ),
        "search": lambda: search_latency.run(
            settings, client, _progress, duration_s=10.0 if quick else 30.0, rate=rate
        ),
    }
    warm_up_s: float | None = None
    catch_up_s: float | None = None
    # Without Debezium no change reaches the worker: say so now, not after each scenario's timeout.
    try:
        problems = connectors.not_running(connectors.status_all(settings))
    except StackError as exc:  # Connect itself does not answer
        problems = [str(exc)]
    if problems:
        error = (
            f"the Debezium connectors are not all running ({'; '.join(problems)}): run `streams connectors register`"
        )
        _progress(error)
        for name in chosen:
            results.setdefault(name, {"error": error})
        return None, None, False
    try:
        with running_worker(settings, _progress, settings.stack_home / "worker-bench.log") as started:
            try:
                catch_up_s = wait_caught_up(settings, _progress)
                if not examples_not_configured(settings.sources):
                    warm_up_s = steady.warm_up(settings, client, _progress)
            except Exception as exc:  # the scenarios still run and say what they see
                _progress(f"warm-up failed: {exc}")
            for name in SCENARIOS:
                if name in chosen:
                    before = _scrape_or_none(settings)
                    results[name] = _run_scenario(name, plan[name])
                    results[name]["dead_letters"] = dead_letters(before, _scrape_or_none(settings))
    except Exception as exc:
        for name in chosen:
            results.setdefault(name, {"error": f"worker: {type(exc).__name__}: {exc}"})
        started = False
    return warm_up_s, catch_up_s, started
