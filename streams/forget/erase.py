"""Erase a person from one index generation: scrub the state records, delete what is about them,
redact what mentions them.

Two ways a chunk can hold a person:
- it is *about* them: the document's subjects (from the mappings) name one of their identifiers
  (their contact record, tickets they requested, notes about them), or a part of it was written by
  them (a comment, a wiki revision; the part's author is in the state record, not on its chunks).
  Those chunks are deleted: found through the state records (the chunk ids of every emptied part)
  and through the chunks' `subjects` field;
- it *mentions* them in free text ("Please keep Priya Park (priya.park@...) in copy"): found with
  the candidate queries of every mention pattern, confirmed by the same redactor the write path
  uses, and rewritten with the mention replaced by ``[redacted]`` and the chunk **re-embedded** (a
  vector must not keep encoding the name). The document's state record takes the new chunk hashes,
  and the rest of the document stays searchable.

This Elasticsearch has no `_delete_by_query`: each step searches a page, writes it, and searches
again until a page comes back short (`until_exhausted`). Every write goes through the one bounded
bulk helper (elastic/bulk.py), and every item is read by the one rule (errors.classify_item): a 429
is waited out, never a reason to give the request up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from streams.elastic import bulk
from streams.elastic.bulk import LIMITS, BulkLimits
from streams.errors import IndexingError, Outcome, RetryableError, classify_item
from streams.forget.expand import Identity
from streams.forget.outcome import ForgetOutcome
from streams.forget.queries import MENTION_FIELDS, mention_query, naming
from streams.observability.phases import Phases
from streams.pipeline.mentions import MentionPattern, Redactor
from streams.pipeline.plan_batch import state_id
from streams.pipeline.update_document_state import DocumentState, forget_in_state
from streams.records import text_hash

log = logging.getLogger(__name__)

PAGE = 1000
MAX_ROUNDS = 50

Embed = Callable[[list[str]], Awaitable[list[list[float]]]]
BeforeWrite = Callable[[ForgetOutcome], Awaitable[None]]  # saves what a step noted before it writes
Hit = dict[str, Any]
OnPage = Callable[[list[Hit]], Awaitable[bool]]  # writes a page; True: search again even if it was short


async def until_exhausted(
    client: AsyncElasticsearch,
    alias: str,
    query: Callable[[], dict[str, Any]],
    on_page: OnPage,
    *,
    what: str,
    **search: Any,
) -> None:
    """Search a page, hand it to `on_page`, and again (after a refresh, so the last writes are seen)
    until a page comes back short and `on_page` asks for no other look. `query` is built anew for
    every page (what to skip grows). Raises when `what` keeps appearing after MAX_ROUNDS pages."""
    for round_number in range(MAX_ROUNDS):
        if round_number:
            await client.indices.refresh(index=alias)
        response = await client.search(index=alias, size=PAGE, query=query(), **search)
        hits = response["hits"]["hits"]
        again = await on_page(hits)
        if not again and len(hits) < PAGE:
            return
    raise IndexingError(f"{what} kept appearing after {MAX_ROUNDS} rounds", stage="forget")


async def erase(
    client: AsyncElasticsearch,
    alias: str,
    identity: Identity,
    redactor: Redactor,
    embed: Embed,
    phases: Phases | None = None,
    outcome: ForgetOutcome | None = None,
    before_write: BeforeWrite | None = None,
    limits: BulkLimits = LIMITS,
) -> ForgetOutcome:
    """Delete what is about the person, then redact what mentions them.

    `outcome` collects what was removed and redacted: the lane passes one per request, kept over its
    attempts. Each step notes what it is about to write in it and calls `before_write` (which saves
    it, progress.py) before writing: a worker killed midway leaves the note for the next one.

    The writes are not refreshed one by one: the verification refreshes once after them all and
    searches again, so anything a round here left behind makes the request fail and be retried.
    """
    steps = _Steps(client, alias, outcome or ForgetOutcome([]), before_write or _nothing, limits)
    steps.outcome.identifiers = sorted(set(steps.outcome.identifiers) | identity.identifiers)
    phases = phases or Phases()
    with phases.timed("refresh"):  # what the indexer wrote before the gate, searchable now
        await client.indices.refresh(index=alias)
    with phases.timed("scrub"):
        await steps.scrub_states(identity.identifiers)
    with phases.timed("delete"):
        await steps.delete_named_chunks(identity.identifiers)
    if identity.patterns:
        with phases.timed("redact"):
            await steps.redact_mentions(identity.patterns, redactor, embed)
    return steps.outcome


async def _nothing(outcome: ForgetOutcome) -> None:
    return None


class _Steps:
    """The three steps of `erase` over one generation, sharing its client, outcome and note-saver."""

    def __init__(
        self,
        client: AsyncElasticsearch,
        alias: str,
        outcome: ForgetOutcome,
        before_write: BeforeWrite,
        limits: BulkLimits,
    ) -> None:
        self.client, self.alias, self.outcome = client, alias, outcome
        self.before_write, self.limits = before_write, limits

    async def scrub_states(self, identifiers: set[str]) -> None:
        """Empty every state record's parts that name the person, and delete those parts' chunks by id."""

        async def on_page(hits: list[Hit]) -> bool:
            actions: list[dict[str, Any]] = []
            for hit in hits:
                before = DocumentState.from_json(hit["_source"])
                after = forget_in_state(before, identifiers)
                gone = sorted(set(before.chunk_ids()) - set(after.chunk_ids()))
                actions.extend({"_op_type": "delete", "_index": hit["_index"], "_id": chunk} for chunk in gone)
                for chunk in gone:
                    self.outcome.note_removed((hit["_index"], before.source), chunk, before.document_id)
                if after.visible and not gone:  # kept, only the person taken out (a ticket's Cc)
                    self.outcome.note_scrubbed((hit["_index"], before.source), before.document_id)
                # Written only if nobody changed the record since it was read; else scrubbed again.
                actions.append(
                    {
                        "_op_type": "index",
                        "_index": hit["_index"],
                        "_id": state_id(after.document_id),
                        "if_seq_no": hit["_seq_no"],
                        "if_primary_term": hit["_primary_term"],
                        "_source": after.to_json(),
                    }
                )
            conflicts = await self._write(actions) if actions else 0
            self.outcome.state_records += len(hits) - conflicts
            if conflicts:
                log.info("%d state records changed while forgetting; scrubbing them again", conflicts)
            return bool(conflicts)

        await until_exhausted(
            self.client,
            self.alias,
            lambda: naming("state", identifiers),
            on_page,
            what=f"state records naming {sorted(identifiers)}",
            seq_no_primary_term=True,
        )

    async def delete_named_chunks(self, identifiers: set[str]) -> None:
        """Chunks whose `subjects` field names the person (also those written before parts kept their
        authors in the state record only)."""

        async def on_page(hits: list[Hit]) -> bool:
            for hit in hits:  # noted first: a write that fails midway leaves them noted for the next attempt
                source = hit["_source"]
                self.outcome.note_removed(
                    (hit["_index"], source.get("source", "")), hit["_id"], source.get("document_id", "")
                )
            if hits:
                await self._write([{"_op_type": "delete", "_index": hit["_index"], "_id": hit["_id"]} for hit in hits])
            return False

        await until_exhausted(
            self.client,
            self.alias,
            lambda: naming("chunk", identifiers),
            on_page,
            what=f"chunks naming {sorted(identifiers)}",
            source_includes=["source", "document_id"],
        )

    async def redact_mentions(self, patterns: set[MentionPattern], redactor: Redactor, embed: Embed) -> None:
        """Rewrite every chunk that mentions the person without the mention, re-embedded."""
        unconfirmed: set[str] = set()  # candidates the redactor does not see as a mention (left as they are)

        def query() -> dict[str, Any]:
            built = mention_query(patterns)
            # Chunks deleted above may still be searchable (no refresh since): rewriting one would bring it back.
            skip = unconfirmed | self.outcome.removed_chunk_ids()
            if skip:
                built["bool"]["must_not"] = [{"ids": {"values": sorted(skip)}}]
            return built

        async def on_page(hits: list[Hit]) -> bool:
            rewrites: list[tuple[Hit, dict[str, Any]]] = []
            for hit in hits:
                source = hit["_source"]
                redacted = {name: redactor.redact(source.get(name) or "") for name in MENTION_FIELDS}
                if all(redacted[name] == (source.get(name) or "") for name in MENTION_FIELDS):
                    unconfirmed.add(hit["_id"])
                    continue
                rewrites.append((hit, {**source, **redacted, "text_hash": text_hash(redacted["text"])}))
            if rewrites:
                await self._rewrite(rewrites, redactor, embed)
            return False

        await until_exhausted(self.client, self.alias, query, on_page, what="mentions", source_excludes=["vector"])

    async def _rewrite(self, rewrites: list[tuple[Hit, dict[str, Any]]], redactor: Redactor, embed: Embed) -> None:
        # Every rewritten chunk is embedded again from its redacted text.
        vectors = await embed([new["text"] for _, new in rewrites])
        actions: list[dict[str, Any]] = []
        for (hit, new), vector in zip(rewrites, vectors, strict=True):
            actions.append(
                {"_op_type": "index", "_index": hit["_index"], "_id": hit["_id"], "_source": {**new, "vector": vector}}
            )
            self.outcome.note_redacted((hit["_index"], new.get("source", "")), hit["_id"], new.get("document_id", ""))
        await self._write(actions)
        await _record_redactions(self.client, [(hit["_index"], new) for hit, new in rewrites], redactor)

    async def _write(self, actions: list[dict[str, Any]]) -> int:
        """Save the note, then write; returns how many conditional writes conflicted (409). A 429 the
        helper's own retries did not outlast is RetryableError (the lane waits it out); any other
        refusal is IndexingError."""
        await self.before_write(self.outcome)
        items = await bulk.bulk(self.client, actions, stage="forget", limits=self.limits)
        by_outcome: dict[Outcome, list[dict[str, Any]]] = {}
        for item in items:
            by_outcome.setdefault(classify_item(item), []).append(item)
        if failed := by_outcome.get(Outcome.PERMANENT):
            raise IndexingError(f"{len(failed)} forget writes failed, first: {failed[0]}", stage="forget")
        if refused := by_outcome.get(Outcome.TRANSIENT):
            raise RetryableError(f"{len(refused)} forget writes refused for now, first: {refused[0]}", stage="forget")
        return len(by_outcome.get(Outcome.CONFLICT, []))


async def _record_redactions(
    client: AsyncElasticsearch, rewritten: list[tuple[str, dict[str, Any]]], redactor: Redactor
) -> None:
    """Put the redacted chunks' hashes (and the redacted title) into their documents' state records,
    so the next change of the document diffs against what the index really holds."""
    by_document: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for index, chunk in rewritten:
        by_document.setdefault((index, chunk["document_id"]), []).append(chunk)
    await asyncio.gather(
        *(
            _record_document_redactions(client, index, document_id, chunks, redactor)
            for (index, document_id), chunks in by_document.items()
        )
    )


async def _record_document_redactions(
    client: AsyncElasticsearch, index: str, document_id: str, chunks: list[dict[str, Any]], redactor: Redactor
) -> None:
    for _ in range(MAX_ROUNDS):
        try:
            doc = await client.get(index=index, id=state_id(document_id))
        except NotFoundError:
            break
        state = DocumentState.from_json(doc["_source"])
        for chunk in chunks:
            part = state.parts.get(chunk["part_id"])
            number = int(chunk["chunk_number"])
            if part is not None and number < len(part.chunk_hashes):
                part.chunk_hashes[number] = chunk["text_hash"]
        if state.root is not None:
            state.root.title = redactor.redact(state.root.title)
        try:
            await client.index(
                index=index,
                id=state_id(document_id),
                document={**doc["_source"], **state.to_json()},
                if_seq_no=doc["_seq_no"],
                if_primary_term=doc["_primary_term"],
            )
            break
        except ConflictError:
            log.info("state of %s changed while redacting; recording it again", document_id)
