"""The `streams` command. Each command group lives beside the code it drives; this file only
gathers them, importing lazily so that `streams --help` stays fast (torch is never imported here)."""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

# command name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "stack": "streams.stack.commands:stack",
    "connectors": "streams.stack.commands:connectors",
    "seed": "streams.sources.commands:seed",
    "worker": "streams.agents.commands:worker",
    "search": "streams.elastic.commands:search",
    "forget": "streams.agents.forget_commands:forget",
    "verify": "streams.elastic.verify_index:verify",
    "freshness": "streams.observability.commands:freshness",
    "bench": "streams.bench.commands:bench",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        return command  # type: ignore[no-any-return]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def main(verbose: bool) -> None:
    """streams: keep an Elasticsearch hybrid index in step with your source databases."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


if __name__ == "__main__":
    main()
