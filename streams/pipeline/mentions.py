"""Mentions of a forgotten person in free text: found and redacted by keyed hash, never by clear text.

A forgotten person is named in other people's documents ("Please keep Priya Park
(priya.park@umbrella-health.org) in copy"). Their *mention patterns* are their email addresses,
their full name (as a phrase) and their phone numbers. The suppression ledger keeps only a keyed
hash of each normalized pattern, so the ledger itself is not a list of forgotten people's names.

Redaction works from the hashes alone: every candidate in a text (each email-shaped string, each
phone-shaped digit run, each run of two to four words) is normalized the same way, hashed with the
same key and replaced by ``[redacted]`` when its hash is in the set. The same code redacts new
events on the write path and the chunks already in the index when a request arrives, so both agree.

Written variants that count as the same mention:
- email: any letter case, with or without ``mailto:``, and the common ``name at domain`` /
  ``name [at] domain`` / ``name(at)domain`` obfuscations;
- name: any letter case and whitespace between the words (a name is a phrase, never a single word);
- phone: any separators (spaces, dots, dashes, parentheses), with or without the country code
  (the last ten digits are compared too).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, get_args

from streams.records import normalize_email

MentionKind = Literal["email", "name", "phone"]
MENTION_KINDS: tuple[MentionKind, ...] = get_args(MentionKind)  # the mappings' `mentions` keys too
MARKER = "[redacted]"

# Bounded and anchored at a boundary: an unbounded `[\w.]+` before a missing '@' backtracks over the
# whole word from every position, quadratic on a 100,000-character token (a hostile input).
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]{1,64}(?:@|\s*\[at\]\s*|\s*\(at\)\s*|\s+at\s+)"
    r"[\w-]{1,63}(?:(?:\.|\s*\[dot\]\s*|\s+dot\s+)[\w-]{1,63}){1,8}(?![\w-])",
    re.IGNORECASE,
)
_EMAIL_AT = re.compile(r"\s*\[at\]\s*|\s*\(at\)\s*|\s+at\s+", re.IGNORECASE)
_EMAIL_DOT = re.compile(r"\s*\[dot\]\s*|\s+dot\s+", re.IGNORECASE)
_PHONE = re.compile(r"(?<![\d+(])\+?\(?\d[\d\s().-]{5,24}\d(?!\d)")
_WORD = re.compile(r"[^\W\d_]+(?:['’.-][^\W\d_]+)*")
_NAME_GAP = re.compile(r"[ \t\u00a0]+")  # words of one name sit on one line
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 7, 15
MAX_NAME_WORDS = 4
FIRST_WORD = "first:"


def normalize(kind: MentionKind, value: str) -> str:
    """The canonical form hashed for a pattern and for every candidate found in text."""
    if kind == "email":
        value = normalize_email(value).removeprefix("mailto:")
        value = _EMAIL_DOT.sub(".", _EMAIL_AT.sub("@", value))
        return value
    if kind == "phone":
        return "".join(ch for ch in value if ch.isdigit())
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


@dataclass(frozen=True)
class MentionPattern:
    """One way a person is written in text. Clear text: lives only while a request is handled."""

    kind: MentionKind
    value: str

    @property
    def normalized(self) -> str:
        return normalize(self.kind, self.value)

    def forms(self) -> list[str]:
        """The normalized forms that count as this pattern (a phone also without its country code)."""
        form = self.normalized
        if self.kind == "phone" and len(form) > 10:
            return [form, form[-10:]]
        return [form]

    def usable(self) -> bool:
        """Too short a pattern would redact ordinary words or numbers: a name needs two words."""
        form = self.normalized
        if self.kind == "name":
            return len(form.split()) >= 2
        if self.kind == "phone":
            return MIN_PHONE_DIGITS <= len(form) <= MAX_PHONE_DIGITS
        return "@" in form

    def phrase(self) -> str:
        """The text a search engine's phrase query uses to look for this pattern."""
        if self.kind == "phone":
            return self.value
        return self.normalized


def keyed_hash(key: bytes, kind: MentionKind, form: str) -> str:
    # Keyed BLAKE2b is a MAC: without the key, a hash cannot be tested against a guessed name.
    return hashlib.blake2b(f"{kind}:{form}".encode(), key=key, digest_size=16).hexdigest()


def pattern_hashes(key: bytes, patterns: Iterable[MentionPattern]) -> dict[str, MentionKind]:
    """hash -> kind for every usable form of every pattern (what the ledger stores).

    A name also stores the hash of its first word (``first:<word>``, a form no candidate takes), so
    that redaction hashes a run of words only where a known name could start.
    """
    hashes: dict[str, MentionKind] = {}
    for pattern in patterns:
        if not pattern.usable():
            continue
        for form in pattern.forms():
            hashes[keyed_hash(key, pattern.kind, form)] = pattern.kind
        if pattern.kind == "name":
            hashes[keyed_hash(key, "name", FIRST_WORD + pattern.normalized.split()[0])] = "name"
    return hashes


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def _candidates(
    text: str, kinds: set[MentionKind], first_word_known: Callable[[str], bool]
) -> Iterator[tuple[MentionKind, Span, list[str]]]:
    if "email" in kinds:
        for match in _EMAIL.finditer(text):
            start = match.start()
            if text[max(0, start - 7) : start].lower() == "mailto:":
                start -= 7
            yield "email", Span(start, match.end()), [normalize("email", match.group())]
    if "phone" in kinds:
        for match in _PHONE.finditer(text):
            digits = normalize("phone", match.group())
            if MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
                forms = [digits, digits[-10:]] if len(digits) > 10 else [digits]
                yield "phone", Span(match.start(), match.end()), forms
    if "name" in kinds:
        yield from _name_candidates(text, first_word_known)


def _name_candidates(
    text: str, first_word_known: Callable[[str], bool]
) -> Iterator[tuple[MentionKind, Span, list[str]]]:
    """Runs of two to four words on one line that start with the first word of a known name."""
    words = list(_WORD.finditer(text))
    for i, first in enumerate(words):
        if not first_word_known(normalize("name", first.group())):
            continue  # the cheap test: most words start no name
        for n in range(2, MAX_NAME_WORDS + 1):
            last = i + n - 1
            if last >= len(words) or not _NAME_GAP.fullmatch(text[words[last - 1].end() : words[last].start()]):
                break
            span = Span(first.start(), words[last].end())
            written = text[span.start : span.end]
            forms = [normalize("name", written)]
            if written[-2:] in {"'s", "’s"}:  # "Priya Park's laptop"
                forms.append(normalize("name", written[:-2]))
            yield "name", span, forms


class Redactor:
    """Finds and replaces mentions whose keyed hash is known. Holds hashes, never names."""

    def __init__(self, key: bytes, hashes: dict[str, MentionKind] | None = None) -> None:
        self.key = key
        self.hashes: dict[str, MentionKind] = dict(hashes or {})

        self._known = lru_cache(maxsize=65536)(self._hash_known)

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def add(self, hashes: dict[str, MentionKind]) -> None:
        self.hashes.update(hashes)
        self._known.cache_clear()

    def _hash_known(self, kind: MentionKind, form: str) -> bool:
        return keyed_hash(self.key, kind, form) in self.hashes

    def _first_word_known(self, word: str) -> bool:
        return self._known("name", FIRST_WORD + word)

    def spans(self, text: str) -> list[Span]:
        """Where `text` mentions a known pattern, overlapping spans merged, in order."""
        if not self.hashes or not text:
            return []
        kinds = set(self.hashes.values())
        found = [
            span
            for kind, span, forms in _candidates(text, kinds, self._first_word_known)
            if any(self._known(kind, form) for form in forms)
        ]
        merged: list[Span] = []
        for span in sorted(found, key=lambda s: (s.start, -s.end)):
            if merged and span.start <= merged[-1].end:
                merged[-1] = Span(merged[-1].start, max(merged[-1].end, span.end))
            else:
                merged.append(span)
        return merged

    def redact(self, text: str) -> str:
        spans = self.spans(text)
        for span in reversed(spans):
            text = text[: span.start] + MARKER + text[span.end :]
        return text

    def mentions(self, text: str) -> int:
        return len(self.spans(text))


_NOT_DIGIT = re.compile(r"\D+")


def could_mention(patterns: Iterable[MentionPattern]) -> Callable[[str], bool]:
    """A cheap test that is False only where `Redactor.mentions` would find none of `patterns`.

    For a scan of many texts (every dead letter) that pays the redactor's full candidate search only
    where a mention is possible. Exact for ASCII text, where normalizing is lower-casing: every
    written variant of an email keeps its local part, a name each of its words, a phone the last seven
    of its digits in a row once separators are dropped. Other text is always scanned in full
    (Unicode normalization does not keep substrings), so the test never hides a mention.
    """
    usable = [pattern for pattern in patterns if pattern.usable()]
    # A name's every word is in any text that mentions it: its longest is the rarest to find by chance.
    words = sorted(
        {p.normalized.split("@", 1)[0] for p in usable if p.kind == "email"}
        | {max(p.normalized.split(), key=len) for p in usable if p.kind == "name"}
    )
    digits = sorted({p.normalized[-MIN_PHONE_DIGITS:] for p in usable if p.kind == "phone"})

    def test(text: str) -> bool:
        if not text or not usable:
            return False
        if not text.isascii():
            return True
        lowered = text.lower()
        if any(word in lowered for word in words):
            return True
        return bool(digits) and any(run in _NOT_DIGIT.sub("", text) for run in digits)

    return test
