"""The `streams` command. Each command group lives beside the code it drives; this file only
gathers them, importing lazily so that `streams --help` stays fast (torch is never imported here)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import click

from streams import __version__
from streams.logs import LogFormat, configure_logging

# Every duration a command takes: zero or a negative number would only fail later, deep in a client
# (`freshness --timeout -5` ended in a traceback), so click refuses them with the option's name.
Seconds = click.FloatRange(min=0, min_open=True)

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def number_option(
    *param_decls: str, default: float, help: str, at_least: float | None = None, at_most: float | None = None
) -> Decorator:
    """A numeric option whose --help shows its default and bounds: an int default takes integers, a float
    default any number, within `at_least` and `at_most` where given (click refuses others by name)."""
    kind: click.ParamType
    if isinstance(default, int):
        kind = click.INT if at_least is None and at_most is None else click.IntRange(at_least, at_most)
    else:
        kind = click.FLOAT if at_least is None and at_most is None else click.FloatRange(at_least, at_most)
    return click.option(*param_decls, type=kind, default=default, show_default=True, help=help)


def seconds_option(*param_decls: str, default: float, help: str) -> Decorator:
    """A duration option (`Seconds`) whose --help shows its default."""
    return click.option(*param_decls, type=Seconds, default=default, show_default=True, help=help)


def choice_option(*param_decls: str, choices: Sequence[str], default: str, help: str) -> Decorator:
    """An option that takes one of `choices` (click refuses others, naming them), whose --help shows its default."""
    return click.option(*param_decls, type=click.Choice(choices), default=default, show_default=True, help=help)


# command name -> ("module:attribute" of a click command or group, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "stack": ("streams.stack.commands:stack", "Start, stop or report the local stack (no Docker needed)."),
    "connectors": ("streams.stack.commands:connectors", "Register the Debezium connectors in connectors/."),
    "seed": (
        "streams.sources.commands:seed",
        "Fill the applications (through their APIs) and the example sources with realistic content.",
    ),
    "worker": ("streams.agents.commands:worker", "Run the faust worker: indexing, deletions, metrics, search."),
    "search": ("streams.search:search", "Hybrid (BM25 + kNN) search over the fresh index."),
    "forget": ("streams.agents.forget_commands:forget", "Publish a right-to-be-forgotten request."),
    "locate": (
        "streams.agents.locate_commands:locate_command",
        "What the index and the dead letters hold about a person (changes nothing).",
    ),
    "receipt": ("streams.agents.receipt_commands:receipt", "Check a deletion receipt's signature and chain."),
    "verify": ("streams.verify:verify", "Compare the source databases with the index."),
    "freshness": ("streams.observability.commands:freshness", "Freshness percentiles per source."),
    "bench": ("streams.bench.commands:bench", "Run the benchmark suite through the real stack."),
    "migrate": ("streams.migrate:migrate", "Build a new index generation (model, chunking) and switch to it."),
    "eval": ("streams.eval.commands:eval_", "Retrieval quality on a golden set; load a set through the pipeline."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name][0].split(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        return command  # type: ignore[no-any-return]

    def invoke(self, ctx: click.Context) -> Any:
        # Refused credentials (Kafka, Elasticsearch) read the same in every command: one line naming the
        # user or the kind of credential, no traceback.
        from streams.clients import CredentialsRefused

        try:
            return super().invoke(ctx)
        except CredentialsRefused as exc:
            raise click.ClickException(str(exc)) from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing commands must not import them: some pull in torch.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_text) for name, (_, help_text) in sorted(COMMANDS.items())])


def _log_format() -> LogFormat:
    """STREAMS_LOG_FORMAT; text when the settings do not load (the command then says why, in text)."""
    from streams.settings import get_settings

    try:
        return get_settings().log_format
    except Exception:
        return "text"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="streams", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def main(verbose: bool) -> None:
    """streams: keep an Elasticsearch hybrid index in step with your source databases."""
    configure_logging(_log_format(), logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        # One line per HTTP request is noise in a command's output (`streams freshness` printed two);
        # their failures still come through as warnings and errors.
        for chatty in ("httpx", "elastic_transport"):
            logging.getLogger(chatty).setLevel(logging.WARNING)


if __name__ == "__main__":
    main()
