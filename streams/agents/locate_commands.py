"""`streams locate SUBJECT`: what the index and the dead letters hold about a person, changing nothing,
published as a subject access report (forget/locate.py) that `streams forget --report ID` can act on."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from elasticsearch import AsyncElasticsearch

from streams import avro
from streams.cli import choice_option
from streams.clients import async_elasticsearch_client, kafka_producer, read_whole_topic, unique_group
from streams.errors import DecodeError, InvalidRequest
from streams.forget.dead_letters import DeadLetterHit, find_dead_letters
from streams.forget.locate import SubjectReport, locate, locate_targets
from streams.forget.request import validate_deletion_request
from streams.pipeline.mentions import MentionPattern, could_mention
from streams.records import SUBJECT_KINDS
from streams.settings import Settings, get_settings


def dead_letter_scan(
    settings: Settings,
) -> Callable[[set[str], Callable[[str], int], set[MentionPattern]], list[DeadLetterHit]]:
    def scan(
        identifiers: set[str], mentions: Callable[[str], int], patterns: set[MentionPattern]
    ) -> list[DeadLetterHit]:
        return find_dead_letters(
            settings,
            identifiers,
            mentions,
            could_mention=could_mention(patterns),
            group=unique_group("streams-locate"),
            honour_tombstones=True,
        )

    return scan


async def locate_subject(
    settings: Settings, client: AsyncElasticsearch, subject: str, kind: str, requested_by: str
) -> SubjectReport:
    """The report for SUBJECT over every generation and the dead letters (nothing is changed)."""
    targets = await locate_targets(client, settings.index_alias)
    return await locate(
        client,
        targets,
        subject,
        kind,
        settings.ledger_key_bytes(),
        dead_letter_scan(settings),
        settings.dead_letter_topic,
        requested_by,
    )


def publish_report(settings: Settings, report: SubjectReport) -> None:
    producer = kafka_producer(settings, acks="all")
    value = avro.encode("subject_report", report.to_dict(), settings.schema_registry_url)
    producer.produce(settings.reports_topic, key=report.report_id.encode(), value=value)
    if producer.flush(15) > 0:
        raise click.ClickException(f"the report was not delivered to Kafka at {settings.kafka_bootstrap}")


def read_report(settings: Settings, report_id: str) -> SubjectReport | None:
    """The report published under `report_id` (the newest, should there be several)."""
    found = None
    for message in read_whole_topic(settings, settings.reports_topic, unique_group("streams-report")):
        value = message.value()
        if message.key() != report_id.encode() or value is None:
            continue
        try:
            found = SubjectReport.from_dict(avro.decode("subject_report", value, settings.schema_registry_url))
        except DecodeError:
            continue
    return found


def check_subject(subject: str, kind: str) -> None:
    """The deletion lane's rule for a subject (forget/request.py): a subject it would reject is refused."""
    try:
        validate_deletion_request({"request_id": "locate", "subject": subject, "subject_kind": kind})
    except InvalidRequest as exc:
        raise click.BadParameter(str(exc), param_hint="'SUBJECT'") from exc


def subject_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Who SUBJECT is and who asks: declared once for `streams locate` and `streams forget`."""
    command = click.option("--requested-by", default="compliance", show_default=True, help="Who asked.")(command)
    return choice_option("--kind", choices=SUBJECT_KINDS, default="email", help="What SUBJECT identifies.")(command)


@click.command()
@click.argument("subject")
@subject_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def locate_command(subject: str, kind: str, requested_by: str, as_json: bool) -> None:
    """List every chunk, state record and dead letter that names or concerns SUBJECT, over every index
    generation, each with why it matched and what `streams forget` would do with it. Changes nothing.

    The report is published to the reports topic (STREAMS_REPORTS_TOPIC); `streams forget --report ID`
    forgets what it lists.

    \b
    Examples:
      streams locate ann@example.com
      streams locate 4711 --kind contact_id --json
    """
    import asyncio

    check_subject(subject, kind)
    settings = get_settings()

    async def run() -> SubjectReport:
        client = async_elasticsearch_client(settings)
        try:
            return await locate_subject(settings, client, subject, kind, requested_by)
        finally:
            await client.close()

    report = asyncio.run(run())
    publish_report(settings, report)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        for line in report.lines():
            click.echo(line)
