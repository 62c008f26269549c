"""`streams stack ...` and `streams connectors ...`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from streams.cli import Seconds, seconds_option
from streams.settings import Settings, get_settings
from streams.stack import connectors as connectors_module
from streams.stack import stack as stack_module
from streams.stack.runner import Printer, StackError


def _setting_default(name: str) -> str:
    """An option whose default is a setting: its value, and the variable that changes it."""
    return f"[default: {Settings.model_fields[name].default}, or STREAMS_{name.upper()}]"


def _printer() -> Printer:
    return Printer(lambda line: click.echo(line, err=True))


@click.group()
def stack() -> None:
    """Start, stop and inspect the local stack (Kafka, Connect + Debezium, Elasticsearch, PostgreSQL,
    MariaDB, and the applications STREAMS_STACK_APPS names: MediaWiki, Request Tracker and Tryton unless
    it says otherwise) as local processes on 127.0.0.1, without Docker."""


def _echo_dsns(report: dict[str, Any]) -> None:
    for source, dsn in report["source_dsns"].items():
        click.echo(f"{source + ' DSN':14} {dsn or 'not set: add it to STREAMS_SOURCE_DSNS'}")


@stack.command()
def up() -> None:
    """Provision and start every server that is not running; wait until all are healthy."""
    settings = get_settings()
    progress = _printer()
    try:
        started = stack_module.up(settings, progress)
    except StackError as exc:
        click.echo(f"stack up failed after {progress.elapsed():.1f}s:\n{exc}", err=True)
        sys.exit(1)
    report = stack_module.status(settings)
    for name, server in report["servers"].items():
        click.echo(f"{name:14} {server['endpoint']:28} pid {server['pid']}")
    _echo_dsns(report)
    _echo_applications(report)
    what = f"started {', '.join(started)}" if started else "everything was already running"
    click.echo(f"stack healthy in {progress.elapsed():.1f}s ({what})")


@stack.command()
@seconds_option("--timeout", default=30.0, help="Seconds to wait after SIGTERM before SIGKILL.")
def down(timeout: float) -> None:
    """Stop the servers this stack started (by their pid files); data stays under stack_home."""
    settings = get_settings()
    progress = _printer()
    stopped = stack_module.down(settings, progress, stop_timeout_s=timeout)
    click.echo(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Print endpoints and per-server state as JSON.")
def status(as_json: bool) -> None:
    """Show endpoints and whether each server is running and healthy (exit 1 when not all healthy)."""
    report = stack_module.status(get_settings())
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for name, server in report["servers"].items():
            state = "healthy" if server["healthy"] else ("running" if server["running"] else "stopped")
            click.echo(f"{name:14} {state:8} {server['endpoint']:28} pid {server['pid']}")
        _echo_dsns(report)
        _echo_applications(report)
    sys.exit(0 if report["healthy"] else 1)


def _echo_applications(report: dict[str, Any]) -> None:
    for name, application in report.get("applications", {}).items():
        click.echo(f"{name:14} database {application['database']}, passwords in {application['credentials']}")


@click.group()
def connectors() -> None:
    """The Debezium connectors in connectors/*.json."""


@connectors.command()
@seconds_option("--timeout", default=120.0, help="Seconds to wait for RUNNING.")
def register(timeout: float) -> None:
    """Create or update every connector (idempotent) and wait until each connector and task is RUNNING."""
    progress = _printer()
    try:
        connectors_module.register(get_settings(), progress, timeout_s=timeout)
    except StackError as exc:
        click.echo(f"connectors register failed:\n{exc}", err=True)
        sys.exit(1)
    click.echo(f"all connectors RUNNING ({progress.elapsed():.1f}s)")


@connectors.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print Kafka Connect's status objects as JSON.")
def connectors_status(as_json: bool) -> None:
    """Show each connector's and task's state (exit 1 when any is not RUNNING)."""
    try:
        report = connectors_module.status_all(get_settings())
    except StackError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    for name, state in report.items():
        if as_json:
            continue
        if state is None:
            click.echo(f"{name:10} not registered")
            continue
        tasks = state.get("tasks", [])
        click.echo(
            f"{name:10} {state['connector']['state']:8} tasks: " + ", ".join(f"{t['id']}={t['state']}" for t in tasks)
        )
    sys.exit(1 if connectors_module.not_running(report) else 0)


@connectors.command("watch")
@click.option(
    "--interval",
    type=Seconds,
    default=None,
    help=f"Seconds between looks. {_setting_default('watch_interval_s')}",
)
@click.option(
    "--stall",
    type=Seconds,
    default=None,
    help="Seconds without a captured event (heartbeats included) before a connector counts as stalled "
    f"and is restarted. {_setting_default('watch_stall_s')}",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many looks (default: run until stopped).",
)
def watch_command(interval: float | None, stall: float | None, rounds: int | None) -> None:
    """Supervise the connectors until stopped: restart failed tasks, and stalled ones (whose source's
    heartbeats stopped arriving in Kafka, whatever Connect says), ending first the stale PostgreSQL
    session that still holds a stalled connector's replication slot. Every action is logged with its reason.
    """
    import logging
    import signal
    import threading

    from streams.stack.watch_connectors import watch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    overrides: dict[str, float] = {}
    if interval is not None:
        overrides["watch_interval_s"] = interval
    if stall is not None:
        overrides["watch_stall_s"] = stall
    if overrides:
        settings = settings.model_copy(update=overrides)
    stop = threading.Event()
    # SIGTERM (how the demo and the test session stop it) ends the current round cleanly.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        watch(settings, stop=stop, rounds=rounds)
    except KeyboardInterrupt:
        pass
