"""Locate a person: every chunk, state record and dead letter that names or concerns them, over every
index generation, changing nothing (a subject access request, GDPR Art. 15).

It finds what `forget` would erase, with the deletion lane's own pieces: `expand_identities` for who
the person is and how they are written, `queries.naming` and `queries.mention_query` for what names
and may mention them, `forget_in_state` for the parts a state record would lose (the chunks of a
comment they wrote), the redactor for what is a mention, and `find_dead_letters` for dead letters.
Each finding says why it matched (a subject field, the part's author, or a mention and its form) and
what `forget` would do with it (delete, redact, scrub, tombstone).

The report is a record of its own (schemas/subject_report.avsc, on `STREAMS_REPORTS_TOPIC`); `streams
forget --report ID` forgets the subject of a report, its identifiers included, and checks the receipt
against what the report listed.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from elasticsearch import AsyncElasticsearch

from streams.forget.dead_letters import DeadLetterHit
from streams.forget.expand import Identity, expand_identities, generations
from streams.forget.queries import MENTION_FIELDS, mention_query, naming
from streams.pipeline.mentions import MentionPattern, Redactor, pattern_hashes
from streams.pipeline.update_document_state import DocumentState, forget_in_state
from streams.records import subject_identifier

PAGE = 1000

SUBJECT, WRITTEN_BY, MENTION = "subject", "written_by", "mention"
DELETE, REDACT, SCRUB, TOMBSTONE = "delete", "redact", "scrub", "tombstone"
CHUNK, STATE, DEAD_LETTER = "chunk", "state", "dead_letter"

Hit = dict[str, Any]
# (identifiers, mentions, could_mention) -> the dead letters that name or mention the person
FindDeadLetters = Callable[[set[str], Callable[[str], int], set[MentionPattern]], list[DeadLetterHit]]


@dataclass(frozen=True)
class Match:
    """Why a finding matched: `subject` (a subjects field names the identifier `value`; `detail` says
    whose: "chunk", "state", "root", or "record"), `written_by` (the part `detail` of the document was
    written by `value`), or `mention` (the text mentions the person as `value`, a `detail`: name,
    email or phone)."""

    why: str
    value: str
    detail: str = ""


@dataclass(frozen=True)
class Finding:
    place: str  # chunk | state | dead_letter
    location: str  # the index generation, or <topic>/<partition>/<offset>
    id: str  # the chunk's or state record's id, or the dead letter's key
    document_id: str
    source: str
    action: str  # what `forget` does with it: delete | redact | scrub | tombstone
    matches: list[Match] = field(default_factory=list)

    def line(self) -> str:
        reasons = "; ".join(_reason(match) for match in self.matches)
        where = f"{self.place} {self.id} in {self.location} ({self.source or '-'})"
        return f"{where}: {reasons} -> forget would {self.action} it"


def _reason(match: Match) -> str:
    if match.why == SUBJECT:
        return f"its {match.detail} subjects name {match.value}"
    if match.why == WRITTEN_BY:
        return f"its part {match.detail} was written by {match.value}"
    return f"mentions the {match.detail} as {match.value!r}"


@dataclass(frozen=True)
class SubjectReport:
    """What is held about a subject, as schemas/subject_report.avsc has it."""

    report_id: str
    subject: str
    subject_kind: str
    requested_by: str
    identifiers: list[str]
    generations: list[str]
    findings: list[Finding]
    located_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The record as avro.encode("subject_report", ...) takes it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> SubjectReport:
        findings = [
            Finding(**{**finding, "matches": [Match(**match) for match in finding["matches"]]})
            for finding in record["findings"]
        ]
        return cls(**{**record, "findings": findings})

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "located_at": self.located_at.isoformat()}

    def lines(self) -> list[str]:
        head = f"report {self.report_id}: {self.subject} ({self.subject_kind})"
        if not self.findings:
            return [
                f"{head}: nothing held",
                f"  searched for {', '.join(self.identifiers)} in {', '.join(self.generations) or 'no index'} "
                "and the dead letters",
            ]
        counts = {place: sum(f.place == place for f in self.findings) for place in (CHUNK, STATE, DEAD_LETTER)}
        lines = [
            f"{head}: {counts[CHUNK]} chunks, {counts[STATE]} state records, {counts[DEAD_LETTER]} dead letters",
            f"  identifiers: {', '.join(self.identifiers)}; generations: {', '.join(self.generations)}",
        ]
        lines += [f"  {finding.line()}" for finding in self.findings]
        lines.append(
            f"  nothing was changed; `streams forget --report {self.report_id}` forgets what this report lists"
        )
        return lines


class MentionFinder:
    """Which mentions of the person a text holds, and of which kind, by the lane's redactor (keyed
    hashes of the patterns, one redactor per kind so that each mention says its kind)."""

    def __init__(self, key: bytes, patterns: set[MentionPattern]) -> None:
        self.patterns = patterns
        hashes = pattern_hashes(key, patterns)
        self.any = Redactor(key, hashes)
        self.by_kind = {
            kind: Redactor(key, {digest: k for digest, k in hashes.items() if k == kind})
            for kind in sorted(set(hashes.values()))
        }

    def matches(self, texts: Iterable[str]) -> list[Match]:
        found: list[Match] = []
        for text in texts:
            for kind, redactor in self.by_kind.items():
                for span in redactor.spans(text):
                    match = Match(MENTION, text[span.start : span.end], kind)
                    if match not in found:
                        found.append(match)
        return found


async def _every(client: AsyncElasticsearch, index: str, query: dict[str, Any], **search: Any) -> list[Hit]:
    """Every hit of `query` in one concrete index: pages, each excluding the ids seen (ids are unique
    within one index, so nothing is skipped or seen twice)."""
    hits: list[Hit] = []
    seen: list[str] = []
    while True:
        paged = {"bool": {"filter": [query], "must_not": [{"ids": {"values": seen}}]}} if seen else query
        page = (await client.search(index=index, size=PAGE, query=paged, **search))["hits"]["hits"]
        hits += page
        seen += [hit["_id"] for hit in page]
        if len(page) < PAGE:
            return hits


async def locate_in_index(
    client: AsyncElasticsearch, expression: str, identity: Identity, finder: MentionFinder
) -> tuple[list[str], list[Finding]]:
    """The generations `expression` names, and what they hold about the person."""
    await client.indices.refresh(index=expression)
    indices = await generations(client, expression)
    findings: dict[tuple[str, str], Finding] = {}

    def add(finding: Finding) -> None:
        key = (finding.location, finding.id)
        known = findings.get(key)
        if known is None:
            findings[key] = finding
            return
        matches = known.matches + [m for m in finding.matches if m not in known.matches]
        action = DELETE if DELETE in (known.action, finding.action) else known.action
        findings[key] = Finding(known.place, known.location, known.id, known.document_id, known.source, action, matches)

    ids = identity.identifiers
    for index in indices:
        for hit in await _every(client, index, naming(STATE, ids)):
            before = DocumentState.from_json(hit["_source"])
            named = sorted(ids & set(before.subjects))
            add(Finding(STATE, index, hit["_id"], before.document_id, before.source, SCRUB, _subjects(named, STATE)))
            after = forget_in_state(before, ids)
            for chunk in sorted(set(before.chunk_ids()) - set(after.chunk_ids())):
                part = chunk.rsplit("#", 2)[1]
                root = sorted(ids & set(before.root.subjects)) if before.root else []
                part_state = before.parts.get(part)
                authors = sorted(ids & set(part_state.subjects)) if part_state else []
                matches = _subjects(root, "root") or [Match(WRITTEN_BY, author, part) for author in authors]
                add(Finding(CHUNK, index, chunk, before.document_id, before.source, DELETE, matches))
        for hit in await _every(
            client, index, naming(CHUNK, ids), source_includes=["source", "document_id", "subjects"]
        ):
            named = sorted(ids & set(hit["_source"].get("subjects") or []))
            add(_chunk_finding(index, hit, DELETE, _subjects(named, CHUNK)))
        if identity.patterns:
            for hit in await _every(client, index, mention_query(identity.patterns), source_excludes=["vector"]):
                matches = finder.matches(hit["_source"].get(name) or "" for name in MENTION_FIELDS)
                if matches:  # a candidate the redactor does not confirm is no mention
                    add(_chunk_finding(index, hit, REDACT, matches))
    return indices, sorted(findings.values(), key=lambda f: (f.location, f.place, f.id))


def _chunk_finding(index: str, hit: Hit, action: str, matches: list[Match]) -> Finding:
    source = hit["_source"]
    return Finding(CHUNK, index, hit["_id"], source.get("document_id", ""), source.get("source", ""), action, matches)


def _subjects(identifiers: list[str], whose: str) -> list[Match]:
    return [Match(SUBJECT, identifier, whose) for identifier in identifiers]


def dead_letter_findings(hits: Iterable[DeadLetterHit], topic: str, finder: MentionFinder) -> list[Finding]:
    findings = []
    for hit in hits:
        matches = _subjects(sorted(hit.named), "record") + finder.matches(hit.texts)
        findings.append(
            Finding(
                DEAD_LETTER,
                f"{topic}/{hit.partition}/{hit.offset}",
                hit.key.decode("utf-8", errors="replace"),
                "",
                str(hit.record.get("origin_topic") or ""),
                TOMBSTONE,
                matches,
            )
        )
    return findings


async def locate(
    client: AsyncElasticsearch,
    expression: str,
    subject: str,
    subject_kind: str,
    key: bytes,
    dead_letters: FindDeadLetters,
    topic: str,
    requested_by: str = "",
) -> SubjectReport:
    """The report for one subject: `expression` names every generation to search (locate_targets),
    `key` is the ledger key (the redactor's), `dead_letters` scans the dead-letter topic `topic`."""
    identity = await expand_identities(client, expression, {subject_identifier(subject_kind, subject)})
    finder = MentionFinder(key, identity.patterns)
    # The dead-letter scan reads a whole topic: in a thread, beside the index searches.
    scan = asyncio.get_running_loop().run_in_executor(
        None, dead_letters, identity.identifiers, finder.any.mentions, identity.patterns
    )
    (indices, findings), scanned = await asyncio.gather(locate_in_index(client, expression, identity, finder), scan)
    return SubjectReport(
        report_id=str(uuid.uuid4()),
        subject=subject,
        subject_kind=subject_kind,
        requested_by=requested_by,
        identifiers=sorted(identity.identifiers),
        generations=indices,
        findings=findings + dead_letter_findings(scanned, topic, finder),
        located_at=datetime.now(UTC),
    )


async def locate_targets(client: AsyncElasticsearch, alias: str) -> str:
    """Every generation of the index: those behind the alias and every `<alias>-v<N>` beside it (a
    migration's target, or an old generation not dropped yet)."""
    behind = (
        set(await client.indices.get_alias(index=alias)) if await client.indices.exists_alias(name=alias) else set()
    )
    named = await client.indices.get(index=f"{alias}-v*", allow_no_indices=True, expand_wildcards="open")
    beside = {index for index in named if re.fullmatch(rf"{re.escape(alias)}-v\d+", index)}
    return ",".join(sorted(behind | beside)) or alias


def unaccounted(report: SubjectReport, receipt: dict[str, Any]) -> list[str]:
    """What the report listed that the receipt of `forget --report` does not account for: an
    identifier not forgotten, a document neither deleted nor redacted, dead letters not tombstoned."""
    missing = [
        f"identifier {name} was not forgotten" for name in report.identifiers if name not in receipt["identifiers"]
    ]
    handled = {
        (count["index"], document)
        for count in [*receipt["removed"], *(receipt.get("redacted") or [])]
        for document in count.get("document_ids") or []
    }
    for finding in report.findings:
        if finding.place == CHUNK and (finding.location, finding.document_id) not in handled:
            missing.append(f"{finding.id} in {finding.location} is in neither the deleted nor the redacted documents")
    letters = {finding.id for finding in report.findings if finding.place == DEAD_LETTER}
    if len(letters) > receipt["dead_letters_tombstoned"]:
        missing.append(f"{len(letters)} dead letters listed, {receipt['dead_letters_tombstoned']} tombstoned")
    return missing
