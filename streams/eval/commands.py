"""`streams eval`: retrieval quality on a golden set, the quality gate, and loading a set."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from streams.cli import choice_option, number_option, seconds_option
from streams.settings import get_settings

DEFAULT_SET = Path(__file__).resolve().parents[2] / "eval" / "streams-golden"
DEFAULT_SOURCE = click.core.ParameterSource.DEFAULT


@click.group(invoke_without_command=True)
@click.option(
    "--set",
    "set_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_SET,
    show_default=True,
    help="The golden set: a BEIR directory (corpus.jsonl, queries.jsonl, qrels/test.tsv), loaded with `eval load`.",
)
@click.option(
    "--sets",
    "sets",
    default=None,
    metavar="DIR1,DIR2,...",
    help="Several BEIR sets, comma-separated, each loaded with `eval load`: a report per set and the mean "
    "over the sets (instead of --set; each set's one load record names its group; --baseline compares the mean).",
)
@click.option("--group", default=None, help="The access group it was loaded into (default: the only one loaded).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (totals and every query).")
@click.option("--per-query", is_flag=True, help="Also print each query's nDCG@10 in the table.")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), help="Also write the JSON report here.")
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A saved `--json` report: exit 1 if any metric fell more than --max-drop below it.",
)
@number_option("--max-drop", default=0.02, help="Largest allowed fall per metric.")
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(["hybrid", "bm25", "knn"]),
    help="Only these rankings (repeatable; default: all).",
)
@click.option("--index", default=None, help="Search this index or alias instead of the live alias (experiments).")
@click.option(
    "--held-out",
    is_flag=True,
    help="Only the queries `streams eval tune` holds out: the test queries of a set with dev or train qrels, "
    "else the half of its test queries the seeded split (--seed) keeps from tuning.",
)
@number_option("--seed", default=0, help="The seed of the --held-out split (as `streams eval tune --seed`).")
@click.option("--rrf-k", type=int, default=None, help="Experiment: RRF's k.")
@click.option("--bm25-weight", type=float, default=None, help="Experiment: BM25's weight in the fusion.")
@click.option("--knn-weight", type=float, default=None, help="Experiment: kNN's weight in the fusion.")
@click.option("--num-candidates", type=int, default=None, help="Experiment: kNN num_candidates.")
@click.option("--chunks-per-k", type=int, default=None, help="Experiment: chunks each retriever fetches per result.")
@click.option("--fields", default=None, help="Experiment: BM25 fields with boosts, comma-separated (text,title^2).")
@click.pass_context
def eval_(
    ctx: click.Context,
    set_dir: Path,
    sets: str | None,
    group: str | None,
    as_json: bool,
    per_query: bool,
    save: Path | None,
    baseline: Path | None,
    max_drop: float,
    modes: tuple[str, ...],
    index: str | None,
    held_out: bool,
    seed: int,
    rrf_k: int | None,
    bm25_weight: float | None,
    knn_weight: float | None,
    num_candidates: int | None,
    chunks_per_k: int | None,
    fields: str | None,
) -> None:
    """Measure retrieval quality: nDCG@10, recall@100, MRR@10 and precision@5 of hybrid search, BM25
    alone and kNN alone over a golden set that `streams eval load` put through the pipeline, and the p95
    latency of each ranking's searches (in the JSON report). With --sets, each set and the mean.

    Every query goes through the same search function as /search, restricted to the set's access group.
    With --baseline it is a quality gate: it exits 1 and names each metric that fell more than
    --max-drop below the saved report.

    \b
    streams eval load eval/streams-golden --group eval-golden
    streams eval --save before.json
    streams eval --baseline before.json --max-drop 0.02
    streams eval --sets eval/streams-golden,~/.cache/streams/beir/nfcorpus-2000 --json
    streams eval --held-out --seed 0 --mode hybrid --rrf-k 20 --bm25-weight 1.5   # a choice of `eval tune`
    """
    if ctx.invoked_subcommand is not None:
        return
    import dataclasses

    from streams.agents.runtime import embedder_for
    from streams.clients import async_elasticsearch_client, elasticsearch_client
    from streams.elastic.hybrid_index import DEFAULT_TUNING, MODES
    from streams.eval.golden_set import GoldenSet, GoldenSetError, read_golden_set
    from streams.eval.load_collection import LoadedCollection
    from streams.eval.report import quality_drops, read_report, table
    from streams.eval.run_eval import evaluate_set
    from streams.eval.sets import mean_report, parse_sets, read_beir_set, sets_table
    from streams.eval.split_queries import ReadSet, split_queries

    if sets is not None and ctx.get_parameter_source("set_dir") is not DEFAULT_SOURCE:
        raise click.UsageError("give --set or --sets, not both")
    if sets is not None and per_query:
        raise click.UsageError("--per-query is for one set (--set)")
    if sets is not None and group is not None:
        raise click.UsageError("--group is for one set (--set): with --sets each set's one load record names its group")
    if not held_out and ctx.get_parameter_source("seed") is not DEFAULT_SOURCE:
        raise click.UsageError("--seed is the seed of the --held-out split: give --held-out too")

    def queries(directory: Path, read: ReadSet) -> GoldenSet:
        return split_queries(directory, seed, read).held_out if held_out else read(directory, "test")

    settings = get_settings()
    changes: dict[str, Any] = {
        "rrf_k": rrf_k,
        "bm25_weight": bm25_weight,
        "knn_weight": knn_weight,
        "num_candidates": num_candidates,
        "chunks_per_k": chunks_per_k,
        "bm25_fields": tuple(f.strip() for f in fields.split(",")) if fields else None,
    }
    tuning = dataclasses.replace(DEFAULT_TUNING, **{k: v for k, v in changes.items() if v is not None})
    try:
        if sets is None:
            collections = [(queries(set_dir, read_golden_set), LoadedCollection.read(set_dir, group))]
        else:  # every set checked (files, JSON, qrels against the corpus) before any query is asked
            paths = [path.expanduser() for path in parse_sets(sets)]
            goldens = [queries(path, read_beir_set) for path in paths]
            collections = [(golden, LoadedCollection.read(golden.path, group)) for golden in goldens]
        saved = read_report(baseline) if baseline else None
    except GoldenSetError as exc:
        raise click.ClickException(str(exc)) from exc
    searched = index or settings.index_alias
    with elasticsearch_client(settings) as es:  # queries embedded by the model that built the index searched
        if not es.indices.exists(index=searched):
            raise click.ClickException(
                f"no index {searched} yet: start the worker (`streams worker`) and load the set (`streams eval load`)"
            )
        embedder = embedder_for(settings, es, searched)
    reports = [
        evaluate_set(
            lambda: async_elasticsearch_client(settings),
            embedder.encode,
            searched,
            golden,
            loaded,
            modes or MODES,
            tuning,
        )
        for golden, loaded in collections
    ]
    if sets is None:
        output: dict[str, Any] = reports[0]
        gated = output
        text = table(output, per_query)
    else:
        output = mean_report(reports)
        gated = output["mean"]
        text = sets_table(output)
    if save:
        save.write_text(json.dumps(output, indent=1), encoding="utf-8")
    click.echo(json.dumps(output, indent=1) if as_json else text)
    if saved is not None:
        drops = quality_drops(saved, gated, max_drop, modes)
        for drop in drops:
            click.echo(f"quality gate: {drop.describe()}", err=True)
        if drops:
            sys.exit(1)
        click.echo(f"quality gate: no metric fell more than {max_drop} below {baseline}", err=True)


@eval_.command("load")
@click.argument("set_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--source",
    type=click.Choice(["tickets", "applications"]),
    default=None,
    help="Where the documents go: the real applications the stack runs (STREAMS_STACK_APPS): wiki:* "
    "documents become MediaWiki pages, ticket:* documents RT tickets in the queue GROUP, through their own "
    "APIs, other kinds skipped and counted; or the example tickets database (STREAMS_EXAMPLE_SOURCES=1).  "
    "[default: tickets where the example sources are configured, else applications]",
)
@click.option(
    "--group",
    required=True,
    help="The access group the documents get (and eval searches). With --source applications the "
    "applications' own: the pages' read restriction mediawiki-group:GROUP and the tickets' queue:GROUP.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Delete an earlier load into this group and load again (in the applications, the way their users "
    "delete: MediaWiki's page deletion, RT's deleted status).",
)
@seconds_option("--stall", default=180.0, help="Give up when no document became searchable for this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def load(set_dir: Path, source: str | None, group: str, replace: bool, stall: float, as_json: bool) -> None:
    """Insert a BEIR collection's documents into a source, so that they travel the real path (Debezium,
    Kafka, the worker), wait with progress until every one is searchable, and record which document each
    became in SET_DIR/loaded-GROUP.json. Reports the backfill throughput it saw.

    Loading the same collection into the same group again does nothing unless --replace. The worker
    must be running (`streams worker`) and the connectors registered; with --source applications, the
    stack's applications too (`streams stack up` runs them).

    \b
    streams eval load eval/streams-golden --source applications --group eval-apps
    STREAMS_EXAMPLE_SOURCES=1 streams eval load eval/streams-golden --source tickets --group eval-golden
    streams eval --group eval-apps
    """
    from streams.clients import elasticsearch_client
    from streams.eval import load_collection as loading
    from streams.eval.golden_set import GoldenSetError, read_corpus
    from streams.sources.seed import CONFIGURE_EXAMPLES, examples_not_configured

    settings = get_settings()
    examples_off = examples_not_configured(settings.sources, ["tickets"])
    source = source or ("applications" if examples_off else "tickets")
    if source == "tickets" and examples_off:
        raise click.BadParameter(
            f"the example source tickets is not configured: {CONFIGURE_EXAMPLES},"
            " or load into the applications (--source applications)",
            param_hint="--source",
        )
    try:
        loading.check_group(group)
        corpus = list(read_corpus(set_dir))
    except GoldenSetError as exc:
        raise click.ClickException(str(exc)) from exc
    if not corpus:
        raise click.ClickException(f"{set_dir}/corpus.jsonl has no documents")
    if source == "applications":
        loaded, inserted, started = _load_applications(settings, set_dir, group, corpus, replace, stall)
    else:
        loaded, inserted, started = _load_tickets(settings, set_dir, source, group, corpus, replace)
    es = elasticsearch_client(settings)

    def progress(done: int, total: int, chunks: int) -> None:
        elapsed = time.monotonic() - started
        click.echo(f"  {done}/{total} documents searchable ({chunks} chunks) after {elapsed:.0f} s", err=True)

    try:
        _, chunks = loading.wait_until_indexed(
            es, settings.index_alias, loaded.search_groups, list(loaded.documents.values()), progress, stall_s=stall
        )
    except GoldenSetError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        es.close()
    result = loading.LoadResult(loaded, inserted, inserted == 0, time.monotonic() - started, chunks)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=1))
    elif inserted:
        figures = result.to_json()
        click.echo(
            f"loaded {inserted} documents ({chunks} chunks) into {group} in {result.seconds:.1f} s: "
            f"{figures['documents_per_s']} documents/s, {figures['chunks_per_s']} chunks/s through the pipeline"
        )
    else:
        click.echo(f"{len(loaded.documents)} documents of {set_dir.name} are searchable in group {group}")


def _load_tickets(
    settings: Any, set_dir: Path, source: str, group: str, corpus: list[Any], replace: bool
) -> tuple[Any, int, float]:
    """(the load record, documents inserted, when the first was)."""
    from streams.eval import load_collection as loading
    from streams.sources.connect import connect_postgres

    with connect_postgres(settings.dsn(source), name=source) as conn:
        loaded = None if replace else loading.existing_load(conn, set_dir, group, corpus)
        inserted = 0
        started = time.monotonic()
        if loaded is None:
            removed = loading.delete_group(conn, group)
            if removed:
                click.echo(f"deleted {removed} tickets of an earlier load into {group}", err=True)
            started = time.monotonic()
            documents = loading.insert_tickets(
                conn,
                corpus,
                group,
                lambda n: click.echo(f"inserted {n} tickets", err=True) if n else None,
            )
            inserted = len(documents)
            loaded = loading.LoadedCollection(group, source, documents)
            loaded.save(set_dir)
        else:
            click.echo(f"{set_dir.name} is already loaded into {group}: checking that it is indexed", err=True)
    return loaded, inserted, started


def _load_applications(
    settings: Any, set_dir: Path, group: str, corpus: list[Any], replace: bool, stall: float
) -> tuple[Any, int, float]:
    """Pages through MediaWiki's API and tickets through RT's REST 2; (the load record, documents
    created, when the first was). With `replace`, what an earlier load made is deleted first, and gone
    from the index before the new documents are made."""
    from streams.eval import load_applications as apps
    from streams.eval.golden_set import GoldenSetError
    from streams.eval.load_collection import LoadedCollection
    from streams.sources.write_applications import ApplicationError

    found = apps.plan(corpus)
    for kind, count in sorted(found.skipped.items()):
        click.echo(
            f"skipped {count} documents of kind {kind!r} (only wiki:* and ticket:* go to the applications)", err=True
        )
    if not found.total:
        raise click.ClickException(f"{set_dir}/corpus.jsonl has no wiki:* or ticket:* documents")
    try:
        earlier = LoadedCollection.read(set_dir, group)
    except GoldenSetError:
        earlier = None
    wanted = {d.doc_id for d in (*found.pages, *found.tickets)}
    if earlier is not None and earlier.source != apps.SOURCE:
        raise click.ClickException(
            f"{LoadedCollection.path(set_dir, group)} records a load into the {earlier.source} source: "
            "load into a new group"
        )
    if earlier is not None and not replace and set(earlier.documents) == wanted:
        click.echo(f"{set_dir.name} is already loaded into {group}: checking that it is indexed", err=True)
        return earlier, 0, time.monotonic()
    if earlier is not None and not replace:
        raise click.ClickException(
            f"{LoadedCollection.path(set_dir, group)} records another (or an unfinished) load of "
            f"{len(earlier.documents)} documents into {group}: --replace deletes it, or load into a new group"
        )
    documents: dict[str, str] = {}
    access = tuple(apps.access_groups(group))
    made = dict(earlier.documents) if earlier is not None else {}
    try:
        with apps.connected(settings, found, made) as (wiki, tracker, restrict):
            if made:
                _unload_applications(settings, made, wiki, tracker, list(access), stall)
            click.echo(
                f"loading {len(found.pages)} pages into MediaWiki, {len(found.tickets)} tickets into RT", err=True
            )
            started = time.monotonic()
            apps.load(
                found,
                group,
                wiki,
                tracker,
                restrict,
                lambda what, done, total: click.echo(f"  {done}/{total} {what} created", err=True),
                documents,
            )
    except (ApplicationError, GoldenSetError) as exc:
        if documents:  # what the applications hold now, so that a second run does not make it again
            LoadedCollection(group, apps.SOURCE, documents, access).save(set_dir)
            raise click.ClickException(
                f"{exc} ({len(documents)} documents were created, recorded in {LoadedCollection.path(set_dir, group)})"
            ) from exc
        raise click.ClickException(str(exc)) from exc
    loaded = LoadedCollection(group, apps.SOURCE, documents, access)
    loaded.save(set_dir)
    return loaded, len(documents), started


def _unload_applications(
    settings: Any, made: dict[str, str], wiki: Any, tracker: Any, access: list[str], stall: float
) -> None:
    """Delete an earlier load's pages and tickets, and wait until the index has none of them."""
    from streams.clients import elasticsearch_client
    from streams.eval import load_applications as apps
    from streams.eval import load_collection as loading

    click.echo(f"deleting the {len(made)} documents of the earlier load", err=True)
    deleted = apps.unload(
        made, wiki, tracker, lambda what, done, total: click.echo(f"  {done}/{total} {what}", err=True)
    )
    es = elasticsearch_client(settings)
    try:
        loading.wait_until_indexed(
            es,
            settings.index_alias,
            access,
            deleted,
            lambda done, total, _: click.echo(f"  {done}/{total} still searchable", err=True),
            stall_s=stall,
            gone=True,
        )
    finally:
        es.close()


@eval_.command("copy-index")
@click.option("--group", required=True, help="The loaded golden set's access group: its chunks are copied.")
@click.option("--to", "target", required=True, help="The scratch index to (re)create, e.g. streams-eval-english.")
@choice_option(
    "--analysis",
    choices=["standard", "english"],
    default="english",
    help="How title, section and text are analysed in the copy.",
)
@click.option("--embed-title", is_flag=True, help="Re-embed each chunk as 'title / section' + text (slow).")
@choice_option(
    "--vectors",
    choices=["hnsw", "int8_hnsw"],
    default="hnsw",
    help="How the copy's HNSW graph stores vectors: float32, or int8 (a quarter of the memory).",
)
def copy_index(group: str, target: str, analysis: str, embed_title: bool, vectors: str) -> None:
    """Experiments: copy a loaded golden set's chunks from the live index into a scratch index with another
    mapping (or re-embedded with title and section), then measure it with `streams eval --index TARGET`.
    The live index is only read. Delete the copy with curl -XDELETE when done."""
    from streams.agents.runtime import build_embedder
    from streams.clients import elasticsearch_client
    from streams.eval.experiment_index import copy_group

    if target == get_settings().index_alias or target.startswith(get_settings().index_alias + "-v"):
        raise click.ClickException(f"{target} is the live index: copy into a scratch index")
    settings = get_settings()
    embedder = build_embedder(settings)
    es = elasticsearch_client(settings)
    try:
        count = copy_group(
            es,
            settings.index_alias,
            group,
            target,
            embedder.dimensions,
            analysis,
            embedder.encode if embed_title else None,
            lambda n: click.echo(f"  {n} chunks copied", err=True) if n % 1024 == 0 else None,
            vectors=vectors,
        )
    finally:
        es.close()
    click.echo(
        f"copied {count} chunks of group {group} into {target} ({analysis} analysis, {vectors} vectors"
        f"{', title and section embedded with the text' if embed_title else ''})"
    )


@eval_.command("stage")
@click.argument("name")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A public BEIR collection already on disk in BEIR layout (corpus.jsonl, queries.jsonl, qrels/).",
)
@click.option(
    "--slice",
    "size",
    type=click.IntRange(min=1),
    default=None,
    help="Documents in the slice: every relevant one plus a seeded sample of the others (default: all).",
)
@number_option("--seed", default=0, help="Seed of the sample of other documents.")
@click.option("--split", default="test", show_default=True, help="The qrels file whose queries are kept.")
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of staged sets (default: ~/.cache/streams/beir).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checksum record as JSON.")
def stage(name: str, source: Path, size: int | None, seed: int, split: str, cache: Path | None, as_json: bool) -> None:
    """Stage a slice of a public BEIR collection as NAME under the cache folder: every query of the
    split's qrels, all their relevant documents, and a seeded sample of other documents; sha256 of the
    files read and written go to NAME/checksums.json. Then `streams eval load` and `streams eval --sets`.

    \b
    streams eval stage nfcorpus-2000 --from ~/datasets/nfcorpus --slice 2000
    """
    from streams.eval.golden_set import GoldenSetError
    from streams.eval.sets import CACHE, stage_slice

    if not name or "/" in name or name.startswith("."):
        raise click.BadParameter("a plain folder name", param_hint="NAME")
    target = (cache or CACHE).expanduser() / name
    try:
        record = stage_slice(source, target, size, seed, split)
    except GoldenSetError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"path": str(target), **record}, indent=1))
    else:
        click.echo(
            f"staged {name}: {record['queries']} queries, {record['documents']} documents "
            f"({record['relevant_documents']} relevant) in {target}"
        )


def _grid_values(kind: type[int] | type[float]) -> Any:
    """A click callback: comma-separated positive numbers of `kind`."""

    def parse(ctx: click.Context, param: click.Parameter, value: str) -> tuple[Any, ...]:
        try:
            values = tuple(kind(part) for part in value.split(",") if part.strip())
        except ValueError:
            raise click.BadParameter(f"{value!r}: comma-separated {kind.__name__} values") from None
        if not values or any(v <= 0 for v in values):
            raise click.BadParameter(f"{value!r}: comma-separated values above 0")
        return values

    return parse


def _grid_option(name: str, kind: type[int] | type[float], default: tuple[Any, ...], help: str) -> Any:
    return click.option(
        name,
        default=",".join(map(str, default)),
        show_default=True,
        metavar="N,N,...",
        callback=_grid_values(kind),
        help=help,
    )


@eval_.command("tune")
@click.option(
    "--set",
    "set_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_SET,
    show_default=True,
    help="The golden set (BEIR layout), loaded with `eval load`.",
)
@click.option(
    "--sets",
    default=None,
    metavar="DIR1,DIR2,...",
    help="Several BEIR sets: each tuned on its own, and the one setting best on the mean over the sets.",
)
@click.option("--group", default=None, help="The access group it was loaded into (default: the only one loaded).")
@click.option("--index", default=None, help="Search this index or alias instead of the live alias.")
@number_option(
    "--seed",
    default=0,
    help="Seed of the split of a set with test qrels only: a query tunes when the first byte of "
    "sha256('SEED:QUERY-ID') is even, and is held out otherwise.",
)
# The default grid is tune_fusion.Grid's (a unit test keeps them equal; importing it here would load
# Elasticsearch's client for every `streams` command).
@_grid_option("--rrf-k", int, (10, 20, 40, 60, 100), "RRF's k values tried.")
@_grid_option("--bm25-weight", float, (0.5, 0.75, 1.0, 1.5, 2.0), "BM25 weights tried.")
@_grid_option("--knn-weight", float, (1.0,), "kNN weights tried (only the ratio of the weights matters).")
@_grid_option("--chunks-per-k", int, (2, 4), "Chunks each retriever fetches per result, tried.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (every setting's tuning score).")
def tune(
    set_dir: Path,
    sets: str | None,
    group: str | None,
    index: str | None,
    seed: int,
    rrf_k: tuple[int, ...],
    bm25_weight: tuple[float, ...],
    knn_weight: tuple[float, ...],
    chunks_per_k: tuple[int, ...],
    as_json: bool,
) -> None:
    """Choose the fusion settings (RRF's k, the weights of BM25 and kNN, chunks per result) that give the
    best hybrid nDCG@10 on a set's tuning queries, then measure the default and the choice on its
    held-out queries with the ordinary evaluation. The held-out figure is the honest one.

    A set with qrels/dev.tsv (else qrels/train.tsv) tunes on it and is measured on qrels/test.tsv; a
    set with test qrels only (the project's golden set) is split in two by a hash of each query id
    with --seed. The held-out queries are never asked while choosing. Each tuning query is asked once
    per value of --chunks-per-k; every other setting is fused from those hits without asking again.
    Nothing changes a default: the report prints the `streams eval` command line that measures the
    choice on the held-out queries.

    \b
    streams eval tune
    streams eval tune --seed 7 --rrf-k 20,60 --bm25-weight 1,1.5,2 --chunks-per-k 2
    streams eval tune --sets ~/datasets/fiqa,~/.cache/streams/beir/nfcorpus-2000 --json
    """
    from functools import partial

    from streams.agents.runtime import embedder_for
    from streams.clients import async_elasticsearch_client, elasticsearch_client
    from streams.elastic.hybrid_index import DEFAULT_TUNING, SearchTuning
    from streams.eval.golden_set import GoldenSet, GoldenSetError, read_golden_set
    from streams.eval.load_collection import LoadedCollection
    from streams.eval.run_eval import evaluate_set
    from streams.eval.sets import parse_sets, read_beir_set
    from streams.eval.split_queries import split_queries
    from streams.eval.tune_fusion import Fetch, Grid, elasticsearch_fetch, eval_command, tune_sets, tune_table

    if sets is not None and click.get_current_context().get_parameter_source("set_dir") is not DEFAULT_SOURCE:
        raise click.UsageError("give --set or --sets, not both")
    if sets is not None and group is not None:
        raise click.UsageError("--group is for one set (--set): with --sets each set's one load record names its group")
    try:
        if sets is None:
            splits = [(split_queries(set_dir, seed, read_golden_set), LoadedCollection.read(set_dir, group))]
        else:  # every set checked before any query is asked, as `streams eval --sets` does
            paths = [path.expanduser() for path in parse_sets(sets)]
            splits = [(split_queries(path, seed, read_beir_set), LoadedCollection.read(path, None)) for path in paths]
    except GoldenSetError as exc:
        raise click.ClickException(str(exc)) from exc
    for split, _ in splits:
        click.echo(
            f"{split.held_out.name}: {len(split.tuning.queries)} tuning queries ({split.tuning_from}), "
            f"{len(split.held_out.queries)} held out ({split.held_out_from})",
            err=True,
        )
    settings = get_settings()
    searched = index or settings.index_alias
    with elasticsearch_client(settings) as es:  # queries embedded by the model that built the index searched
        embedder = embedder_for(settings, es, searched)

    def factory() -> Any:
        return async_elasticsearch_client(settings)

    def fetch(loaded: LoadedCollection) -> Fetch:
        return elasticsearch_fetch(factory, embedder.encode, searched, loaded)

    def measure(golden: GoldenSet, loaded: LoadedCollection, tuning: SearchTuning) -> dict[str, Any]:
        return evaluate_set(factory, embedder.encode, searched, golden, loaded, ["hybrid"], tuning)

    # `streams eval --sets` takes no --group (each set's one load record names it)
    command = partial(eval_command, seed=seed, group=splits[0][1].group if sets is None else None, index=index)
    grid = Grid(rrf_k, bm25_weight, knn_weight, chunks_per_k)
    report = tune_sets(splits, grid.settings(DEFAULT_TUNING), fetch, measure, command, DEFAULT_TUNING)
    click.echo(json.dumps(report, indent=1) if as_json else tune_table(report))
